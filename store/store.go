package store

import (
	"context"
	"errors"
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
}

// ErrNotFound is wrapped by errors about an unknown machine, disk or point.
var ErrNotFound = errors.New("not found")

// ErrOutOfOrder is wrapped by Apply when a segment skips a sequence number.
var ErrOutOfOrder = errors.New("segment out of order")
