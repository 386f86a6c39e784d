package recovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Block sizes of the failback checksum compare: a coarse block whose
// checksums differ is compared again block by block at the fine size, and
// only the fine blocks that differ are written. Scattered 4 KiB changes so
// cost what changed, not a megabyte each.
const (
	FailbackCoarse = 1 << 20
	FailbackFine   = 4 << 10
	// hashBatch is how much of the target one request of coarse hashes
	// covers.
	hashBatch = 64 << 20
)

// FailbackSource is the recovered disk as a failback reads it.
type FailbackSource interface {
	Size() int64
	// ReadAt reads exactly len(p) bytes at off; off and len(p) are
	// multiples of FailbackFine, except that a read may end at Size.
	// p is aligned for direct I/O.
	ReadAt(p []byte, off int64) (int, error)
}

// FailbackTarget is the on-premises disk a failback writes.
type FailbackTarget interface {
	Size() int64
	// Hashes returns the SHA-256 of each block of [off, off+n); the last
	// one may be short at the end of n.
	Hashes(ctx context.Context, off, n, block int64) ([][32]byte, error)
	// WriteAt writes p at off (aligned as FailbackSource.ReadAt).
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes what was written durable.
	Sync() error
}

// FailbackCounters count what a failback of one disk did, in bytes.
type FailbackCounters struct {
	// Compared: bytes of the recovered disk compared by checksum.
	Compared int64
	// Differ: bytes of fine blocks found different by the compares.
	Differ int64
	// Sent: bytes written to the target (compares, deltas, verify).
	Sent int64
	// Delta: the part of Sent written by delta passes.
	Delta int64
	// VerifyFixed: bytes the final verification found different and
	// wrote; 0 unless changes escaped the tracker (or none tracked).
	VerifyFixed int64
}

// compareRange compares [off, off+n) of src and dst by checksums and
// writes the fine blocks that differ, runs of them in one write. buf holds
// FailbackCoarse bytes, aligned for direct I/O. It returns the bytes
// found different.
func compareRange(ctx context.Context, src FailbackSource, dst FailbackTarget, off, n int64, buf []byte, c *FailbackCounters) (int64, error) {
	if len(buf) < FailbackCoarse {
		return 0, errors.New("compare: buffer smaller than a coarse block")
	}
	var differ int64
	end := off + n
	for batch := off; batch < end; batch += hashBatch {
		bn := min(hashBatch, end-batch)
		coarse, err := dst.Hashes(ctx, batch, bn, FailbackCoarse)
		if err != nil {
			return differ, fmt.Errorf("checksums of the target at %d: %w", batch, err)
		}
		for i, at := 0, batch; at < batch+bn; i, at = i+1, at+FailbackCoarse {
			if err := ctx.Err(); err != nil {
				return differ, err
			}
			k := min(FailbackCoarse, batch+bn-at)
			p := buf[:k]
			if _, err := src.ReadAt(p, at); err != nil {
				return differ, fmt.Errorf("read the recovered disk at %d: %w", at, err)
			}
			c.Compared += k
			if i < len(coarse) && sha256.Sum256(p) == coarse[i] {
				continue
			}
			fine, err := dst.Hashes(ctx, at, k, FailbackFine)
			if err != nil {
				return differ, fmt.Errorf("checksums of the target at %d: %w", at, err)
			}
			run := int64(-1) // start of a run of differing fine blocks
			flush := func(to int64) error {
				if run < 0 {
					return nil
				}
				if _, err := dst.WriteAt(p[run:to], at+run); err != nil {
					return fmt.Errorf("write the target at %d: %w", at+run, err)
				}
				c.Sent += to - run
				run = -1
				return nil
			}
			for j := int64(0); j < k; j += FailbackFine {
				b := p[j:min(j+FailbackFine, k)]
				idx := j / FailbackFine
				if idx < int64(len(fine)) && sha256.Sum256(b) == fine[idx] {
					if err := flush(j); err != nil {
						return differ, err
					}
					continue
				}
				differ += int64(len(b))
				if run < 0 {
					run = j
				}
			}
			if err := flush(k); err != nil {
				return differ, err
			}
		}
	}
	c.Differ += differ
	return differ, nil
}

// copyRange copies [off, off+n) of src to dst as it is: a delta. off and n
// are widened to FailbackFine by the caller.
func copyRange(ctx context.Context, src FailbackSource, dst FailbackTarget, off, n int64, buf []byte, c *FailbackCounters) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(buf)))
		p := buf[:k]
		if _, err := src.ReadAt(p, off); err != nil {
			return fmt.Errorf("read the recovered disk at %d: %w", off, err)
		}
		if _, err := dst.WriteAt(p, off); err != nil {
			return fmt.Errorf("write the target at %d: %w", off, err)
		}
		c.Sent += k
		c.Delta += k
		off += k
		n -= k
	}
	return nil
}

// alignFine widens [off, off+n) to FailbackFine, clipped to size.
func alignFine(off, n, size int64) (int64, int64) {
	start := off / FailbackFine * FailbackFine
	end := min((off+n+FailbackFine-1)/FailbackFine*FailbackFine, size)
	return start, max(0, end-start)
}

// FailbackDisk is one disk of a failback: the recovered disk it reads and
// the on-premises disk it writes.
type FailbackDisk struct {
	// Name is the machine's name for the disk ("loop3").
	Name string
	// Source is the recovered disk: a block device (tracked, so the
	// recovered machine may keep running) or an image file (not
	// tracked: the recovered machine must be stopped).
	Source string
	// Target is the on-premises block device written back to.
	Target string
}

// FailbackConfig configures a failback session.
type FailbackConfig struct {
	Disks []FailbackDisk
	// Interval is the pause between delta passes (default 1 s).
	Interval time.Duration
	Log      *slog.Logger
}

// Failback phases (FailbackStatus.Phase).
const (
	PhaseComparing = "comparing"
	PhaseDelta     = "delta"
	PhaseFinal     = "final"
	PhaseVerifying = "verifying"
	PhaseDone      = "done"
	PhaseFailed    = "failed"
	PhaseCanceled  = "canceled"
)

// FailbackDiskStatus is the progress of one disk.
type FailbackDiskStatus struct {
	Name, Source, Target string
	// Tracked: the source is a block device tracked by the eBPF tracker.
	Tracked bool
	// Size of the recovered disk; TargetSize of the target.
	Size, TargetSize int64
	FailbackCounters
	// Verified: bytes compared by the final verification.
	Verified int64
}

// FailbackStatus is a snapshot of a session.
type FailbackStatus struct {
	Phase string
	// Passes counts delta passes.
	Passes   int
	Started  time.Time
	Finished time.Time
	// Frozen lists the filesystems frozen for the final cut.
	Frozen []string
	// Freeze is how long they stayed frozen.
	Freeze time.Duration
	Disks  []FailbackDiskStatus
	// Err is why the session failed, nil otherwise.
	Err error
}

// FailbackError is a failback the master target refuses or could not
// finish, with what the operator should do.
type FailbackError struct {
	Disk   string
	Msg    string
	Remedy string
	Err    error
}

func (e *FailbackError) Error() string {
	s := e.Msg
	if e.Disk != "" {
		s = "disk " + e.Disk + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FailbackError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *FailbackError) Hint() string { return e.Remedy }
