package api

// The group protocol: how the coordinator of a replication group walks
// every member through the phases of a group point, over mutual TLS
// (default port GroupPort), one JSON object (GroupMessage) per line each
// way (docs/protocol.md, "Coordinator ↔ member"; docs/ARCHITECTURE.md §4).

// The operations of the group protocol, in the order of a group point:
// prepare → freeze → cut → thaw → validate → commit; abort ends a point
// at any phase.
const (
	GroupOpPrepare  = "prepare"
	GroupOpFreeze   = "freeze"
	GroupOpCut      = "cut"
	GroupOpThaw     = "thaw"
	GroupOpValidate = "validate"
	GroupOpCommit   = "commit"
	GroupOpAbort    = "abort"
)

// GroupMessage is one line of the group protocol: a request of the
// coordinator (Op, Group, ID, Machine), or a member's answer with the
// same Op (OK, and Error when not OK).
type GroupMessage struct {
	Op      string `json:"op"`
	Group   string `json:"group,omitempty"`
	ID      string `json:"id,omitempty"`
	Machine string `json:"machine,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}
