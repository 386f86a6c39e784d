package api

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
