package api

import "time"

// The agent's bandwidth limit (docs/agent.md, "Bandwidth limit"): what
// `agentctl bandwidth` reads and changes over the local API.

// PathAgentBandwidth answers AgentBandwidth (GET); PUT with an
// AgentBandwidthRequest sets a limit that replaces the configured ones
// (until its end, or until DELETE or the agent's restart); DELETE returns
// to the configured limit and schedule. Each answers AgentBandwidth.
const PathAgentBandwidth = "/v1/bandwidth"

// Sources of AgentBandwidth.Source: where the limit in force comes from.
const (
	BandwidthNone         = "none"     // no limit
	BandwidthFromLimit    = "limit"    // --bandwidth-limit
	BandwidthFromSchedule = "schedule" // a window of --bandwidth-schedule
	BandwidthFromOverride = "override" // agentctl bandwidth set
)

// AgentBandwidth is the agent's upload limit, shared by all its disks.
type AgentBandwidth struct {
	// Limit is the limit in force, in bytes per second; 0: none.
	Limit int64 `json:"limit_bytes_per_second"`
	// Source is one of the Bandwidth* constants.
	Source string `json:"source"`
	// Window is the schedule window in force when Source is "schedule".
	Window string `json:"window,omitempty"`
	// Configured is --bandwidth-limit (0: none), the limit outside the
	// schedule's windows.
	Configured int64 `json:"configured_bytes_per_second"`
	// Schedule is --bandwidth-schedule, one window a string.
	Schedule []string `json:"schedule"`
	// Override is the limit set at run time, if any.
	Override *AgentBandwidthOverride `json:"override,omitempty"`
	// NextChange is when the limit in force next changes (a window's
	// start or end, an override's end); absent when it never does.
	NextChange time.Time `json:"next_change,omitzero"`
}

// AgentBandwidthOverride is a limit set at run time.
type AgentBandwidthOverride struct {
	Limit int64     `json:"limit_bytes_per_second"`
	Set   time.Time `json:"set"`
	// Until is when it ends; absent: until cleared or the agent restarts.
	Until time.Time `json:"until,omitzero"`
}

// AgentBandwidthRequest is the body of PUT PathAgentBandwidth.
type AgentBandwidthRequest struct {
	// Limit in bytes per second; 0: no limit while the override lasts.
	Limit int64 `json:"limit_bytes_per_second"`
	// ForSeconds ends the override after that long; 0: no end.
	ForSeconds float64 `json:"for_seconds,omitempty"`
}
