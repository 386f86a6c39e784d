package api

import "time"

// Codes of AgentProblem added by issue 18 (docs/agent.md).
const (
	// AgentProblemServerStalled: segments wait and the process server has
	// acknowledged none for longer than the agent's --stall-alert,
	// although no request failed (a hung or stopped server).
	AgentProblemServerStalled = "server-stalled"
	// AgentProblemLagExceeded: the oldest change not yet durable on the
	// process server has waited longer than the agent's --lag-alert.
	AgentProblemLagExceeded = "rpo-lag-exceeded"
)

// DiskProblem is a failure of one disk of a machine on a process server:
// its applier cannot apply a segment, or its uploads are refused.
// `lifeboat machines` shows it and GET /v1/alerts raises it.
type DiskProblem struct {
	Disk string `json:"disk"`
	// Kind is DiskProblemApply or DiskProblemRefused.
	Kind string `json:"kind"`
	// Status is the HTTP status of a refused upload.
	Status int `json:"status,omitempty"`
	// Seq is the segment concerned.
	Seq     uint64    `json:"seq"`
	Message string    `json:"message"`
	Remedy  string    `json:"remedy"`
	Since   time.Time `json:"since"`
	// Count is how many uploads were refused since Since.
	Count int `json:"count,omitempty"`
}

// Kinds of DiskProblem, and the alerts they raise.
const (
	DiskProblemApply   = "apply-failing"
	DiskProblemRefused = "upload-refused"
	AlertApplyFailing  = "apply-failing"
	AlertUploadRefused = "upload-refused"
)
