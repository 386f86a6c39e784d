//go:build linux

package agent

import (
	"time"

	"github.com/lifeboat-dr/lifeboat/tracker"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// Status is what `agentctl status --json` prints. Stable: documented in
// docs/agent.md. Fields are only ever added.
type Status struct {
	Machine   string       `json:"machine"`
	Healthy   bool         `json:"healthy"`
	Problems  []Problem    `json:"problems"`
	Disks     []DiskStatus `json:"disks"`
	LastPoint *Point       `json:"last_point,omitempty"`
	LastApp   *Point       `json:"last_app_point,omitempty"`
	// Freeze summarizes the freeze times of the app points (seconds).
	Freeze  Lag           `json:"freeze"`
	Tracker TrackerStatus `json:"tracker"`
	Uptime  string        `json:"uptime"`

	// Time is when this status was taken; every duration printed from it
	// is relative to Time, so the same Status always prints the same.
	Time time.Time `json:"time"`
	// Started is when the agent started.
	Started time.Time `json:"started"`
	// Kernel is the kernel release (uname -r), BootID the kernel's boot
	// id: a different boot id than at the last run means a reboot, hence a
	// tracking gap.
	Kernel string `json:"kernel"`
	BootID string `json:"boot_id"`
	// Server is the connection to the process server.
	Server ServerStatus `json:"server"`
	// Certificate is the machine's certificate (absent when unknown).
	Certificate *CertStatus `json:"certificate,omitempty"`
	// Group is the machine's replication group and its last group
	// point; null when group points are off.
	Group *GroupStatus `json:"group"`
}

// GroupStatus is the group part of `agentctl status --json`.
type GroupStatus struct {
	Name        string   `json:"name"`
	Machines    []string `json:"machines"`
	Coordinator string   `json:"coordinator"`
	Listen      string   `json:"listen"`
	LastPoint   *Point   `json:"last_point,omitempty"`
	// LastError is why the last group point failed, "" after a success.
	LastError string `json:"last_error,omitempty"`
}

// TrackerStatus is the state of the kernel tracker.
type TrackerStatus struct {
	Generation uint64 `json:"generation"`
	InFlight   uint64 `json:"in_flight"`
	PinDir     string `json:"pin_dir"`
	// MissedRuns counts tracker runs the kernel skipped.
	MissedRuns uint64 `json:"missed_runs"`
	// Programs are the attached BPF programs (bpftool prog show id ID).
	Programs []tracker.Program `json:"programs"`
}

// ServerStatus is the connection to the process server, summed over the
// uploads of every disk.
type ServerStatus struct {
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

// CertStatus is the machine's certificate.
type CertStatus struct {
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is whole days until NotAfter (negative: expired).
	DaysLeft int `json:"days_left"`
}

// CertWarnDays: a certificate closer than this to its expiry is a problem.
const CertWarnDays = 30

// Problem is an unhealthy state with what to do about it.
type Problem struct {
	// Code names the kind of problem, stable for scripts: see ProblemCodes.
	Code string `json:"code"`
	// Disk is the disk concerned, empty for the machine.
	Disk   string `json:"disk,omitempty"`
	What   string `json:"what"`
	Remedy string `json:"remedy"`
}

// Problem codes (docs/agent.md).
const (
	ProblemServerUnreachable = "server-unreachable"
	ProblemSegmentRefused    = "segment-refused"
	ProblemProcessMoved      = "process-server-moved"
	ProblemRetired           = "machine-retired"
	ProblemSpoolFull         = "spool-full"
	ProblemTrackingGap       = "tracking-gap"
	ProblemTrackingLost      = "tracking-lost"
	ProblemTracker           = "tracker-error"
	ProblemAppPoint          = "app-point-failed"
	ProblemPoint             = "point-failed"
	ProblemRound             = "round-failed"
	ProblemCertExpiring      = "certificate-expiring"
	ProblemCertExpired       = "certificate-expired"
	ProblemGroupListen       = "group-listen-failed"
	ProblemGroupPoint        = "group-point-failed"
)

// DiskStatus is the state of one protected disk.
type DiskStatus struct {
	Name         string            `json:"name"`
	Path         string            `json:"path"`
	Size         int64             `json:"size"`
	State        DiskState         `json:"state"`
	Progress     float64           `json:"progress"` // of initial sync or resync, 0..1
	PendingBytes int64             `json:"pending_bytes"`
	SentBytes    int64             `json:"sent_bytes"`
	EqualBytes   int64             `json:"equal_bytes"`
	Spool        uploader.Status   `json:"spool"`
	Lag          Lag               `json:"lag"`
	Tracker      tracker.DiskStats `json:"tracker"`

	// Sync is the progress of an initial sync or resync (absent when
	// protected).
	Sync *SyncStatus `json:"sync,omitempty"`
}

// SyncStatus measures an initial sync or resync.
type SyncStatus struct {
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

// Unhealthy reports whether any problem is listed.
func (s *Status) Unhealthy() bool { return len(s.Problems) > 0 }

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
