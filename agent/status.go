package agent

import (
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/config"
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
	ProblemServerStalled     = api.AgentProblemServerStalled
	ProblemLagExceeded       = api.AgentProblemLagExceeded
)

// Defaults of Config.StallAlert and Config.LagAlert.
const (
	DefaultStallAlert = 2 * time.Minute
	DefaultLagAlert   = 15 * time.Minute
)

// stallProblems are the problems of a disk whose replication stands still
// although nothing failed (issue 18): a process server that takes
// requests and never answers them (stopped, hung), and an RPO lag over
// the machine's threshold, whatever holds it up (a round that cannot
// read, a slow link).
func stallProblems(ds DiskStatus, state DiskState, server string, waiting, now time.Time, stallAfter, lagAlert time.Duration, bw api.AgentBandwidth) []Problem {
	var out []Problem
	if stallAfter > 0 && !waiting.IsZero() && ds.Spool.LastError == "" {
		if w := now.Sub(waiting); w > stallAfter {
			out = append(out, Problem{Code: ProblemServerStalled, Disk: ds.Name,
				What: fmt.Sprintf("%s: %d segments wait and process server %s has acknowledged none for %s (over %s), with no error: it takes requests and does not answer",
					ds.Name, ds.Spool.Queued, server, w.Round(time.Second), stallAfter),
				Remedy: "check that lifeboat-server runs and is not stopped or hung (its log, its cache disk); the agent abandons a stalled upload and retries, keeping the journal in its spool"})
		}
	}
	if lagAlert > 0 && state == StateProtected && ds.Lag.Current > lagAlert.Seconds() {
		out = append(out, Problem{Code: ProblemLagExceeded, Disk: ds.Name,
			What: fmt.Sprintf("%s: RPO lag %s, over the threshold of %s: the oldest change is not yet durable on the process server",
				ds.Name, (time.Duration(ds.Lag.Current) * time.Second).Round(time.Second), lagAlert),
			Remedy: "see the other problems and the agent's log (a round that fails, a server that refuses or does not answer), and 'agentctl assess' for a link too slow for the disks' changes"})
		if ds.Spool.BandwidthLimited && bw.Limit > 0 {
			p := &out[len(out)-1]
			p.What += fmt.Sprintf("; uploads are held to %s by the bandwidth limit (%s)", config.FormatRate(bw.Limit), bandwidthSource(bw))
			p.Remedy = "the disk changes faster than the bandwidth limit lets it upload: raise the limit for now with 'agentctl bandwidth set RATE' (or for good with --bandwidth-limit, --bandwidth-schedule), or accept the lag until the churn drops"
		}
	}
	return out
}

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
