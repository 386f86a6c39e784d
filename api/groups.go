package api

import "time"

// Paths of the replication-group endpoints (configuration role). {g} is a
// group name.
const (
	// PathGroups lists and creates replication groups (admin).
	PathGroups = "/v1/groups"
	// PathGroup is one replication group (admin).
	PathGroup = "/v1/groups/{g}"
	// PathGroupPoints lists a group's listed points (admin).
	PathGroupPoints = "/v1/groups/{g}/points"
	// PathGroupPoint asks the group's coordinator for a group point now
	// and waits for its outcome (admin).
	PathGroupPoint = "/v1/groups/{g}/point"
	// PathGroupFailover materializes every member at a group point (admin).
	PathGroupFailover = "/v1/groups/{g}/failover"
	// PathAgentGroup is where an agent, with its machine certificate,
	// reports its group listen address and learns its group (agent).
	PathAgentGroup = "/v1/agent/group"
	// PathAgentGroupResult is where a coordinator reports the outcome
	// of a group point (agent).
	PathAgentGroupResult = "/v1/agent/group/result"
)

// DefaultGroupInterval is the group point interval of a group created
// without one.
const DefaultGroupInterval = 5 * time.Minute

// GroupPort is the default port agents listen on for group points.
const GroupPort = 20004

// GroupRequest is the body of POST /v1/groups.
type GroupRequest struct {
	Name     string   `json:"name"`
	Machines []string `json:"machines"`
	// IntervalSeconds is how often the group cuts a point; 0 means
	// DefaultGroupInterval, a negative value only on request.
	IntervalSeconds int64 `json:"interval_seconds"`
}

// Group is a replication group: machines that cut points together.
type Group struct {
	Name string `json:"name"`
	// Machines are the members, sorted; the first is the coordinator.
	Machines        []string  `json:"machines"`
	Coordinator     string    `json:"coordinator"`
	IntervalSeconds int64     `json:"interval_seconds"`
	Created         time.Time `json:"created"`
	// Members says where each member listens for group points, as it
	// last reported (in answers only).
	Members []GroupMember `json:"members"`
	// Points counts the listed group points (in answers only).
	Points int `json:"points"`
	// LatestPoint is the newest listed group point, or null.
	LatestPoint *GroupPoint `json:"latest_point"`
	// LastResult is the outcome of the last group point the coordinator
	// reported since the server started, or null.
	LastResult *GroupPointResult `json:"last_result"`
	// Problems are what needs the operator's attention, each with its
	// remedy; empty when none.
	Problems []string `json:"problems"`
}

// GroupMember is where a member of a group listens.
type GroupMember struct {
	Machine string `json:"machine"`
	// Addr is the host:port the member's agent listens on for group
	// points; "" if it has not reported since the server started.
	Addr string `json:"addr"`
	// Seen is when the member last reported, or null.
	Seen *time.Time `json:"seen"`
}

// GroupPoint is one point across the machines of a group: listed only
// once every member's part of it is listed.
type GroupPoint struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// Time is the earliest cut time of the members.
	Time time.Time `json:"time"`
	Kind string    `json:"kind"` // always "group"
	// Machines are the members the point covers.
	Machines []string `json:"machines"`
	// FreezeSeconds is the longest freeze of the members.
	FreezeSeconds float64 `json:"freeze_seconds"`
	// Materializable is true when every member's part can be failed over
	// to.
	Materializable bool `json:"materializable"`
	// Points are the members' parts, by machine.
	Points map[string]Point `json:"points"`
}

// GroupAssignment is what an agent learns of its group (answer to
// PUT /v1/agent/group). Group is "" when the machine is in no group.
type GroupAssignment struct {
	Machine         string        `json:"machine"`
	Group           string        `json:"group"`
	Machines        []string      `json:"machines"`
	Coordinator     string        `json:"coordinator"`
	IntervalSeconds int64         `json:"interval_seconds"`
	Members         []GroupMember `json:"members"`
	// Request is the id of a group point an operator asked for and
	// that the coordinator has not reported yet; "" if none.
	Request string `json:"request"`
	// ProcessServer is the host:port of the process server the machine
	// is assigned to: the agent switches to it when it changes (a move).
	ProcessServer string `json:"process_server"`
	// Bookmark is a point an operator asked this machine for through
	// the server (api/bookmark.go); nil if none.
	Bookmark *ServerBookmark `json:"bookmark,omitempty"`
}

// GroupReport is the body of PUT /v1/agent/group.
type GroupReport struct {
	// Addr is where the agent listens for group points ("" if it does
	// not).
	Addr string `json:"addr"`
}

// GroupPointResult is the outcome of one group point, reported by the
// coordinator (body of POST /v1/agent/group/result).
type GroupPointResult struct {
	Group string `json:"group"`
	ID    string `json:"id"`
	// Request is the operator's request this answers, "" if none.
	Request string    `json:"request"`
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	// Phase is where it failed: prepare, freeze, cut, thaw, validate,
	// commit ("" if OK).
	Phase string `json:"phase"`
	// Failed are the machines that failed or did not answer in time.
	Failed []string `json:"failed"`
	Error  string   `json:"error"`
	// FreezeSeconds is how long the group was frozen, from the first
	// freeze to the last thaw the coordinator saw.
	FreezeSeconds float64 `json:"freeze_seconds"`
}

// GroupFailoverRequest is the body of POST /v1/groups/{g}/failover.
type GroupFailoverRequest struct {
	// Point is a group point id or PointLatest.
	Point string `json:"point"`
	Test  bool   `json:"test"`
	// Out is an absolute directory on the server host; each member's
	// disks go to Out/<machine>/<disk>.img.
	Out   string `json:"out"`
	Check bool   `json:"check"`
}

// GroupFailoverResult is the answer to a group failover.
type GroupFailoverResult struct {
	Group    string           `json:"group"`
	Point    GroupPoint       `json:"point"`
	Machines []FailoverResult `json:"machines"`
}
