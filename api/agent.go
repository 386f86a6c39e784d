package api

import "time"

// The agent's local API: what agentctl (and scripts) read from a running
// agent over the unix socket AgentSocketName in its state directory. The
// JSON of AgentStatus is documented in docs/agent.md and stable: fields are
// only ever added.

// AgentSocketName is the local API's unix socket in the agent's state
// directory.
const AgentSocketName = "agent.sock"

// Paths of the agent's local API.
const (
	// PathAgentStatus answers AgentStatus (GET).
	PathAgentStatus = "/v1/status"
	// PathAgentBookmark cuts a point (POST) and answers its AgentPoint;
	// the query takes app=1 (app-consistent), group=1 (a group point,
	// on the group's coordinator) and wait=1 (answer once the server
	// lists it). An error answer is an AgentError.
	PathAgentBookmark = "/v1/bookmark"
)

// AgentError is the body of an error answer of the local API.
type AgentError struct {
	Error string `json:"error"`
	// Hint tells the operator what to do about it.
	Hint string `json:"hint"`
	// ID is the point concerned, when there is one (a point in the
	// journal that the server has not listed in time).
	ID string `json:"id,omitempty"`
}

// AgentDiskState is the replication state of a protected disk
// (docs/ARCHITECTURE.md §2).
type AgentDiskState string

const (
	// AgentStateInitialSync: the first full copy, with tracking already on.
	AgentStateInitialSync AgentDiskState = "initial-sync"
	// AgentStateProtected: delta replication.
	AgentStateProtected AgentDiskState = "protected"
	// AgentStateResync: after a loss of tracking, a checksum compare that
	// sends only the blocks that differ from the replica.
	AgentStateResync AgentDiskState = "resync"
)

// AgentPoint is a recovery point the agent cut.
type AgentPoint struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Gen  uint64    `json:"gen"`
	Kind string    `json:"kind"`
	// FreezeSeconds is how long the filesystems were frozen (app points).
	FreezeSeconds float64 `json:"freeze_seconds,omitempty"`
}

// AgentStatus is what `agentctl status --json` prints (docs/agent.md).
type AgentStatus struct {
	Machine   string            `json:"machine"`
	Healthy   bool              `json:"healthy"`
	Problems  []AgentProblem    `json:"problems"`
	Disks     []AgentDiskStatus `json:"disks"`
	LastPoint *AgentPoint       `json:"last_point,omitempty"`
	LastApp   *AgentPoint       `json:"last_app_point,omitempty"`
	// Freeze summarizes the freeze times of the app points (seconds).
	Freeze  AgentLag           `json:"freeze"`
	Tracker AgentTrackerStatus `json:"tracker"`
	Uptime  string             `json:"uptime"`

	// Time is when this status was taken; every duration printed from it
	// is relative to Time, so the same status always prints the same.
	Time time.Time `json:"time"`
	// Started is when the agent started.
	Started time.Time `json:"started"`
	// Kernel is the kernel release (uname -r), BootID the kernel's boot
	// id: a different boot id than at the last run means a reboot, hence a
	// tracking gap.
	Kernel string `json:"kernel"`
	BootID string `json:"boot_id"`
	// Server is the connection to the process server.
	Server AgentServerStatus `json:"server"`
	// Certificate is the machine's certificate (absent when unknown).
	Certificate *AgentCertStatus `json:"certificate,omitempty"`
	// Group is the machine's replication group and its last group
	// point; null when group points are off.
	Group *AgentGroupStatus `json:"group"`
	// Bandwidth is the upload limit shared by the disks (api/bandwidth.go).
	Bandwidth AgentBandwidth `json:"bandwidth"`
}

// Unhealthy reports whether any problem is listed.
func (s *AgentStatus) Unhealthy() bool { return len(s.Problems) > 0 }

// AgentGroupStatus is the group part of AgentStatus.
type AgentGroupStatus struct {
	Name        string      `json:"name"`
	Machines    []string    `json:"machines"`
	Coordinator string      `json:"coordinator"`
	Listen      string      `json:"listen"`
	LastPoint   *AgentPoint `json:"last_point,omitempty"`
	// LastError is why the last group point failed, "" after a success.
	LastError string `json:"last_error,omitempty"`
}

// AgentTrackerStatus is the state of the kernel tracker.
type AgentTrackerStatus struct {
	Generation uint64 `json:"generation"`
	InFlight   uint64 `json:"in_flight"`
	PinDir     string `json:"pin_dir"`
	// MissedRuns counts tracker runs the kernel skipped.
	MissedRuns uint64 `json:"missed_runs"`
	// Programs are the attached BPF programs (bpftool prog show id ID).
	Programs []TrackerProgram `json:"programs"`
}

// TrackerProgram is one kernel program of the tracker.
type TrackerProgram struct {
	// Name is the link's pin name (e.g. link_bio_queue) or "cut".
	Name string `json:"name"`
	// ID is the kernel's program id (bpftool prog show id ID).
	ID uint32 `json:"id"`
	// LinkID is the kernel's link id, zero for the cut program.
	LinkID uint32 `json:"link_id,omitempty"`
}

// TrackerDiskStats are the tracker's counters of one protected disk.
type TrackerDiskStats struct {
	Disk string `json:"disk"`
	// Events and Bytes count requests reported through the ring buffer.
	Events uint64 `json:"events"`
	Bytes  uint64 `json:"bytes"`
	// Drops counts requests the ring buffer had no room for; each was
	// marked in the dirty bitmap instead.
	Drops uint64 `json:"drops"`
	// BitmapRegions counts dirty regions collected from the bitmap.
	BitmapRegions uint64 `json:"bitmap_regions"`
	// Lost counts changes that neither the ring buffer nor the bitmap
	// could record. Any value above zero means the disk needs a resync.
	Lost uint64 `json:"lost"`
	// Mode is "metadata" (extents through the ring buffer) or "bitmap".
	Mode string `json:"mode"`
	// Misses counts blocks a verification sweep found changed that no cut
	// had reported (the Windows tracker; docs/windows.md).
	Misses uint64 `json:"misses,omitempty"`
}

// AgentServerStatus is the connection to the process server, summed over
// the uploads of every disk.
type AgentServerStatus struct {
	Address string `json:"address"`
	// Connected: the last upload reached the server (even if it refused
	// the segment). False also before the first upload.
	Connected bool   `json:"connected"`
	LastError string `json:"last_error,omitempty"`
	// ErrorSince is when the current run of failures began.
	ErrorSince time.Time `json:"error_since,omitzero"`
	// LastOK is the last acknowledged segment's time.
	LastOK time.Time `json:"last_ok,omitzero"`
}

// AgentCertStatus is the machine's certificate.
type AgentCertStatus struct {
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is whole days until NotAfter (negative: expired).
	DaysLeft int `json:"days_left"`
}

// AgentCertWarnDays: a certificate closer than this to its expiry is a
// problem.
const AgentCertWarnDays = 30

// AgentProblem is an unhealthy state with what to do about it.
type AgentProblem struct {
	// Code names the kind of problem, stable for scripts: the
	// AgentProblem* constants.
	Code string `json:"code"`
	// Disk is the disk concerned, empty for the machine.
	Disk   string `json:"disk,omitempty"`
	What   string `json:"what"`
	Remedy string `json:"remedy"`
}

// Codes of AgentProblem (docs/agent.md).
const (
	AgentProblemServerUnreachable = "server-unreachable"
	AgentProblemSegmentRefused    = "segment-refused"
	AgentProblemProcessMoved      = "process-server-moved"
	AgentProblemRetired           = "machine-retired"
	AgentProblemSpoolFull         = "spool-full"
	AgentProblemTrackingGap       = "tracking-gap"
	AgentProblemTrackingLost      = "tracking-lost"
	AgentProblemTracker           = "tracker-error"
	AgentProblemAppPoint          = "app-point-failed"
	AgentProblemPoint             = "point-failed"
	AgentProblemRound             = "round-failed"
	AgentProblemCertExpiring      = "certificate-expiring"
	AgentProblemCertExpired       = "certificate-expired"
	AgentProblemGroupListen       = "group-listen-failed"
	AgentProblemGroupPoint        = "group-point-failed"
)

// AgentDiskStatus is the state of one protected disk.
type AgentDiskStatus struct {
	Name         string           `json:"name"`
	Path         string           `json:"path"`
	Size         int64            `json:"size"`
	State        AgentDiskState   `json:"state"`
	Progress     float64          `json:"progress"` // of initial sync or resync, 0..1
	PendingBytes int64            `json:"pending_bytes"`
	SentBytes    int64            `json:"sent_bytes"`
	EqualBytes   int64            `json:"equal_bytes"`
	Spool        SpoolStatus      `json:"spool"`
	Lag          AgentLag         `json:"lag"`
	Tracker      TrackerDiskStats `json:"tracker"`

	// Sync is the progress of an initial sync or resync (absent when
	// protected).
	Sync *AgentSyncStatus `json:"sync,omitempty"`

	// Mode is AgentModeStream, AgentModeSpool or AgentModeMetadata, and
	// ModeReason why (agentmode.go).
	Mode       string `json:"mode,omitempty"`
	ModeReason string `json:"mode_reason,omitempty"`
}

// SpoolStatus is the state of one disk's spool and its uploads to the
// process server.
type SpoolStatus struct {
	Queued    int    `json:"queued_segments"`
	Bytes     int64  `json:"queued_bytes"`
	NextSeq   uint64 `json:"next_seq"`
	Connected bool   `json:"connected"`
	LastError string `json:"last_error,omitempty"`
	// Refused names why the server refused the last upload, when it did:
	// SpoolRefusedRetired, SpoolRefusedMoved, SpoolRefusedGap,
	// SpoolRefusedCacheFull.
	Refused string    `json:"refused,omitempty"`
	LastOK  time.Time `json:"last_ok"`
	// ErrorSince is when the current run of failures began (zero when the
	// last attempt succeeded).
	ErrorSince time.Time `json:"error_since,omitzero"`
	// BandwidthLimited: segments queue up while the uploads wait for the
	// bandwidth limit (AgentStatus.Bandwidth): the disk lags because of
	// the limit, since BandwidthLimitedSince.
	BandwidthLimited      bool      `json:"bandwidth_limited"`
	BandwidthLimitedSince time.Time `json:"bandwidth_limited_since,omitzero"`
}

// Reasons of SpoolStatus.Refused.
const (
	SpoolRefusedRetired   = "retired"    // ErrRetired: protection ended
	SpoolRefusedMoved     = "moved"      // ErrMisdirected, ErrMoving
	SpoolRefusedGap       = "gap"        // ErrSequenceGap: resync needed
	SpoolRefusedCacheFull = "cache-full" // ErrCacheFull
)

// AgentSyncStatus measures an initial sync or resync.
type AgentSyncStatus struct {
	// Reason says why a resync runs (e.g. "machine rebooted").
	Reason     string    `json:"reason,omitempty"`
	Started    time.Time `json:"started"`
	TotalBytes int64     `json:"total_bytes"`
	DoneBytes  int64     `json:"done_bytes"`
	// Rate is the average since Started, in bytes per second (0 while
	// unknown).
	Rate float64 `json:"bytes_per_second"`
	// ETA is the estimated seconds left (-1 while unknown).
	ETA float64 `json:"eta_seconds"`
}

// AgentLag is the RPO lag of a disk: from a write being queued to its data
// being durable on the process server, over the latest samples (one per
// round that carried changes); for AgentStatus.Freeze, the freeze times of
// the app points.
type AgentLag struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50_seconds"`
	P99     float64 `json:"p99_seconds"`
	Max     float64 `json:"max_seconds"`
	// Current is how long the oldest change not yet durable has waited.
	Current float64 `json:"current_seconds"`
}
