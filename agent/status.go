package agent

import (
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// The local API's types are the wire contract of api/agent.go; these names
// keep the agent's own vocabulary.
type (
	// Status is what `agentctl status --json` prints. Stable: documented
	// in docs/agent.md. Fields are only ever added.
	Status = api.AgentStatus
	// GroupStatus is the group part of Status.
	GroupStatus = api.AgentGroupStatus
	// TrackerStatus is the state of the kernel tracker.
	TrackerStatus = api.AgentTrackerStatus
	// ServerStatus is the connection to the process server.
	ServerStatus = api.AgentServerStatus
	// CertStatus is the machine's certificate.
	CertStatus = api.AgentCertStatus
	// Problem is an unhealthy state with what to do about it.
	Problem = api.AgentProblem
	// DiskStatus is the state of one protected disk.
	DiskStatus = api.AgentDiskStatus
	// SyncStatus measures an initial sync or resync.
	SyncStatus = api.AgentSyncStatus
	// Point is a recovery point the agent cut.
	Point = api.AgentPoint
	// Lag is the RPO lag of a disk (lag.go).
	Lag = api.AgentLag
)

// CertWarnDays: a certificate closer than this to its expiry is a problem.
const CertWarnDays = api.AgentCertWarnDays

// Problem codes (docs/agent.md).
const (
	ProblemServerUnreachable = api.AgentProblemServerUnreachable
	ProblemSegmentRefused    = api.AgentProblemSegmentRefused
	ProblemDiverged          = api.AgentProblemDiverged
	ProblemProcessMoved      = api.AgentProblemProcessMoved
	ProblemRetired           = api.AgentProblemRetired
	ProblemSpoolFull         = api.AgentProblemSpoolFull
	ProblemMetadataMode      = api.AgentProblemMetadataMode
	ProblemTrackingGap       = api.AgentProblemTrackingGap
	ProblemTrackingLost      = api.AgentProblemTrackingLost
	ProblemTracker           = api.AgentProblemTracker
	ProblemAppPoint          = api.AgentProblemAppPoint
	ProblemPoint             = api.AgentProblemPoint
	ProblemRound             = api.AgentProblemRound
	ProblemCertExpiring      = api.AgentProblemCertExpiring
	ProblemCertExpired       = api.AgentProblemCertExpired
	ProblemGroupListen       = api.AgentProblemGroupListen
	ProblemGroupPoint        = api.AgentProblemGroupPoint
)

// syncETA returns the rate and seconds left of a sync that started at
// start having done startDone bytes, now at done of total.
func syncETA(start, now time.Time, startDone, done, total int64) (rate, eta float64) {
	el := now.Sub(start).Seconds()
	if el <= 0 || done <= startDone {
		return 0, -1
	}
	rate = float64(done-startDone) / el
	return rate, float64(total-done) / rate
}
