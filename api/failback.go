package api

import "time"

// Paths of the failback endpoints (admin, served by the configuration
// role's listener and run by the master-target role).
const (
	// PathFailback starts (POST), shows (GET) or cancels (DELETE) the
	// failback of a machine.
	PathFailback = "/v1/machines/{m}/failback"
	// PathFailbackComplete makes the final cut of a failback and
	// switches back (POST).
	PathFailbackComplete = "/v1/machines/{m}/failback/complete"
)

// Machine states of failback (Machine.State).
const (
	// StateFailingBack: a failback session runs: the on-premises disks
	// are being made equal to the recovered ones.
	StateFailingBack = "failing-back"
	// StateFailedBack: a failback completed: the on-premises disks hold
	// the recovered machine's data, verified by checksums. The old
	// source's certificate is refused; register its agent again to
	// protect it anew (it resyncs, sending only what differs).
	StateFailedBack = "failed-back"
)

// Failback phases (FailbackStatus.Phase).
const (
	FailbackComparing = "comparing"
	FailbackDelta     = "delta"
	FailbackFinal     = "final"
	FailbackVerifying = "verifying"
	FailbackDone      = "done"
	FailbackFailed    = "failed"
	FailbackCanceled  = "canceled"
)

// FailbackRequest is the body of POST /v1/machines/{m}/failback.
type FailbackRequest struct {
	// Disks maps disks of the machine to on-premises block devices.
	// Every disk of the failover must be mapped; Disk may be "" for a
	// machine with one disk.
	Disks []FailbackDiskRequest `json:"disks"`
	// IntervalSeconds is the pause between delta passes (default 1).
	IntervalSeconds float64 `json:"interval_seconds"`
}

// FailbackDiskRequest maps one disk.
type FailbackDiskRequest struct {
	// Disk is the machine's name of the disk ("loop3").
	Disk string `json:"disk"`
	// To is the on-premises block device written back to, on the
	// master target's host.
	To string `json:"to"`
	// From is the recovered disk read, on the master target's host: a
	// block device (tracked while the recovered machine runs) or an
	// image file (the recovered machine must be stopped). "" means the
	// loop device attached to the failover image if there is one, else
	// the image itself.
	From string `json:"from"`
}

// FailbackStatus is a failback session: the answer of every failback
// endpoint, and Machine.Failback.
type FailbackStatus struct {
	Machine string `json:"machine"`
	// Phase is comparing, delta, final, verifying, done, failed or
	// canceled.
	Phase string `json:"phase"`
	// Started is when the session started; Finished when it ended (null
	// while it runs).
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished"`
	// Passes counts the delta passes.
	Passes int `json:"passes"`
	// Disks is the progress of each disk.
	Disks []FailbackDisk `json:"disks"`
	// Totals over the disks, in bytes: compared by checksum, found
	// different by the compare, written to the on-premises disks (the
	// compare's differing blocks, the deltas, and anything the final
	// verification fixed).
	ComparedBytes int64 `json:"compared_bytes"`
	DifferBytes   int64 `json:"differ_bytes"`
	SentBytes     int64 `json:"sent_bytes"`
	// Frozen lists the filesystems frozen for the final cut, and
	// FreezeSeconds how long.
	Frozen        []string `json:"frozen"`
	FreezeSeconds float64  `json:"freeze_seconds"`
	// DurationSeconds is the session's duration so far.
	DurationSeconds float64 `json:"duration_seconds"`
	// Error and Hint say why a session failed ("" otherwise).
	Error string `json:"error"`
	Hint  string `json:"hint"`
	// State is the machine's state.
	State string `json:"state"`
}

// FailbackDisk is the progress of one disk of a failback, in bytes.
type FailbackDisk struct {
	Disk   string `json:"disk"`
	Source string `json:"source"`
	Target string `json:"target"`
	// Tracked: the recovered disk is a block device tracked by eBPF, so
	// its machine may run until the final cut.
	Tracked bool `json:"tracked"`
	// SizeBytes of the recovered disk; TargetSizeBytes of the target.
	SizeBytes       int64 `json:"size_bytes"`
	TargetSizeBytes int64 `json:"target_size_bytes"`
	ComparedBytes   int64 `json:"compared_bytes"`
	DifferBytes     int64 `json:"differ_bytes"`
	SentBytes       int64 `json:"sent_bytes"`
	// DeltaBytes: the part of SentBytes sent by delta passes.
	DeltaBytes int64 `json:"delta_bytes"`
	// VerifiedBytes: compared by the final verification;
	// VerifyFixedBytes: found different then, and written (0 unless
	// changes escaped the tracker or the disk was not tracked).
	VerifiedBytes    int64 `json:"verified_bytes"`
	VerifyFixedBytes int64 `json:"verify_fixed_bytes"`
}
