package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Point is a recovery point of a machine: a cut whose marker is durable in
// the journal of every disk of the machine.
type Point struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"` // "crash", "app" or "group"
	Gen   uint64    `json:"gen"`
	Disks []string  `json:"disks"`
	// Freeze is how long the filesystems were frozen for an app-consistent
	// point (from its NOTE record); 0 otherwise.
	Freeze time.Duration `json:"freeze_ns"`
	// Note is the text of the point's NOTE record (JSON by convention:
	// scripts and their exit status, filesystems frozen), "" if none.
	Note string `json:"note,omitempty"`
	// Materializable is false once retention merged the point's journal
	// into the base: the point is listed as history but cannot be
	// failed over to.
	Materializable bool `json:"materializable"`
}

// Retention is a machine's retention policy (docs/ARCHITECTURE.md §4).
type Retention struct {
	// Window: every point younger than this can be materialized (default
	// 24 h). Journal data older than the oldest point kept is merged into
	// the replica base.
	Window time.Duration `json:"window"`
	// KeepAll: every point of this recent span is kept (default 2 h).
	KeepAll time.Duration `json:"keep_all"`
	// Thin: older points within the window are thinned to one per Thin
	// (default 1 h); the rest stop being materializable.
	Thin time.Duration `json:"thin"`
}

// DefaultRetention is the policy of a machine that has none set.
var DefaultRetention = Retention{Window: 24 * time.Hour, KeepAll: 2 * time.Hour, Thin: time.Hour}

// PruneResult says what a Prune did.
type PruneResult struct {
	// Merged is the number of journal segments folded into the base.
	Merged int `json:"merged_segments"`
	// MergedBytes is the size of those segments.
	MergedBytes int64 `json:"merged_bytes"`
	// Dropped lists the points no longer materializable after this prune.
	Dropped []string `json:"dropped_points"`
	// Deferred lists the disks whose folding waits for a materialization
	// that reads them (a shared store: store/azblob); the next prune
	// folds them.
	Deferred []string `json:"deferred_disks,omitempty"`
}

// DiskInfo is what target storage knows of one replicated disk.
type DiskInfo struct {
	Name       string `json:"name"`
	Size       int64  `json:"size"`
	AppliedSeq uint64 `json:"applied_seq"` // last segment applied; valid when Applied
	Applied    bool   `json:"applied"`
}

// Image is one materialized disk.
type Image struct {
	Disk string `json:"disk"`
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Store is target storage: the replicas of machines' disks, their retained
// journals and the recovery-point catalog. The process server is its only
// writer. Implementations: the local directory (local.go, the embedded
// default) and Azure Blob Storage (later).
type Store interface {
	// SetDisks records the disks a machine protects; a point is listed
	// once its cut is in the journal of each of them.
	SetDisks(ctx context.Context, machine string, disks []DiskInfo) error
	// Apply applies a verified, durable segment (an .hrl file) to the
	// disk's replica and journal. Segments must come in sequence order;
	// applying a sequence already applied is a no-op (idempotent), a gap
	// is an error. Apply is durable when it returns.
	Apply(ctx context.Context, machine, disk string, seq uint64, segmentPath string) error
	// Disks returns what is stored for a machine.
	Disks(ctx context.Context, machine string) ([]DiskInfo, error)
	// Machines lists the machines with stored data.
	Machines(ctx context.Context) ([]string, error)
	// Points lists the listed recovery points of a machine, oldest first.
	Points(ctx context.Context, machine string) ([]Point, error)
	// Materialize writes every disk of the machine as it was at the point
	// into outDir/<disk>.img (raw, sparse).
	Materialize(ctx context.Context, machine, pointID, outDir string) ([]Image, error)
	// Hashes returns the SHA-256 of each block of the disk's current
	// replica state (every applied segment) in [off, off+n).
	Hashes(ctx context.Context, machine, disk string, off, n, block int64) ([][32]byte, error)
	// Prune applies a retention policy as of now: thins points, and merges
	// the journal older than the oldest materializable point into the base.
	// It never makes a point within KeepAll unmaterializable.
	Prune(ctx context.Context, machine string, r Retention, now time.Time) (PruneResult, error)
}

// ErrNotFound is wrapped by errors about an unknown machine, disk or point.
var ErrNotFound = errors.New("not found")

// ErrPruned is wrapped by Materialize when retention has dropped the point
// (it is listed with Materializable false, or no longer listed). It wraps
// ErrNotFound, so errors.Is(err, ErrNotFound) holds too.
var ErrPruned = fmt.Errorf("point dropped by retention: %w", ErrNotFound)

// ErrOutOfOrder is wrapped by Apply when a segment skips a sequence number.
var ErrOutOfOrder = errors.New("segment out of order")
