package tracker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Op is what a tracked request did to its extent.
type Op uint8

const (
	// OpWrite is a data write.
	OpWrite Op = iota + 1
	// OpDiscard is a discard (TRIM/UNMAP); the device may return zeros or
	// old data afterwards, so replication reads it back like a write.
	OpDiscard
	// OpWriteZeroes is a write-zeroes request (BLKZEROOUT, REQ_OP_WRITE_ZEROES).
	OpWriteZeroes
	// OpSecureErase is a secure erase, reported so nothing is missed.
	OpSecureErase
	// OpDirty marks a region known to have changed without knowing how: it
	// comes from the overflow bitmap or from a resync. Treat it as a write.
	OpDirty
)

var opNames = map[Op]string{
	OpWrite:       "write",
	OpDiscard:     "discard",
	OpWriteZeroes: "write-zeroes",
	OpSecureErase: "secure-erase",
	OpDirty:       "dirty",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// MarshalText makes an Op print as its name in JSON.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText parses the names MarshalText prints.
func (o *Op) UnmarshalText(b []byte) error {
	for k, v := range opNames {
		if v == string(b) {
			*o = k
			return nil
		}
	}
	return fmt.Errorf("unknown op %q", b)
}

// Extent is a changed byte range of a protected disk. Offset is always
// relative to the start of the whole disk, also for a write that went
// through a partition.
type Extent struct {
	Disk   string `json:"disk"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Op     Op     `json:"op"`
	// Gen is the generation the request was issued in. A cut ends a
	// generation: every request of generation <= N was issued before the
	// cut that returned N+1.
	Gen uint64 `json:"gen"`
}

// End is the first byte after the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventQueued: a request was issued; Extent says what it changes. It
	// has not necessarily reached the disk yet.
	EventQueued EventKind = iota + 1
	// EventCompleted: the request with ID has completed (successfully or
	// not); data read from its extent from now on is what it wrote. Sent
	// only when asked for (Options.CompletionEvents on Linux); Completed
	// answers the same question per generation without them.
	EventCompleted
	// EventDirty: a region changed while events could not be delivered
	// (ring buffer full, bitmap mode). Extent.Op is OpDirty; Extent.Gen is
	// the generation current when the region was collected, so it is
	// complete once that generation is.
	EventDirty
	// EventCut: every event of generations <= Gen has been delivered
	// before this one.
	EventCut
)

var kindNames = map[EventKind]string{
	EventQueued:    "queued",
	EventCompleted: "completed",
	EventDirty:     "dirty",
	EventCut:       "cut",
}

func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText makes an EventKind print as its name in JSON.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is one report of the tracker.
type Event struct {
	Kind EventKind
	// ID identifies a request: the EventCompleted of a request carries the
	// ID of its EventQueued. Zero for dirty and cut events.
	ID     uint64
	Extent Extent
	// Time is when the kernel saw the request (monotonic clock, as
	// nanoseconds since boot), zero when unknown. It may be early (by up
	// to a poll interval of the reader on Linux) but is never late: a
	// request queued after Now returned T has a Time >= T.
	Time time.Duration
}

// DiskStats are the counters of one protected disk.
type DiskStats struct {
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
	// had reported (the Windows tracker's sweep, docs/windows.md; the
	// eBPF tracker sees every write and has no sweep). Each was then sent;
	// a count above zero says the per-cut tracking missed changes.
	Misses uint64 `json:"misses,omitempty"`
}

// Stats are the counters of a tracker.
type Stats struct {
	Generation uint64      `json:"generation"`
	InFlight   uint64      `json:"in_flight"`
	Disks      []DiskStats `json:"disks"`
	// InFlightSpilled counts writes whose completion was followed in the
	// kernel program's overflow hash map because their slot of the
	// direct-mapped table was taken: correct, only slower. A large share
	// of all writes means the table is small for this machine's queue
	// depths (raise Options.InflightSlots).
	InFlightSpilled uint64 `json:"in_flight_spilled"`
	// InFlightReaped counts writes whose completion the kernel program
	// never saw, forgotten once their disk showed nothing in flight
	// (Linux.ReapLost); each one cost a round a completion wait.
	InFlightReaped uint64 `json:"in_flight_reaped,omitempty"`
	// MissedRuns counts runs of the tracker's kernel programs that the
	// kernel skipped (recursion); any value above zero means a resync.
	MissedRuns uint64 `json:"missed_runs"`
	// Programs are the kernel programs doing the tracking (empty where the
	// platform has none), so an operator can find them with bpftool.
	Programs []Program `json:"programs,omitempty"`
}

// Program is one kernel program of a tracker.
type Program struct {
	// Name is the link's pin name (e.g. link_bio_queue) or "cut".
	Name string `json:"name"`
	// ID is the kernel's program id (bpftool prog show id ID).
	ID uint32 `json:"id"`
	// LinkID is the kernel's link id, zero for the cut program.
	LinkID uint32 `json:"link_id,omitempty"`
}

// Tracker reports every change to the protected disks of one machine
// (docs/ARCHITECTURE.md §3). The Linux implementation hooks the block
// layer with eBPF; a Windows tracker is planned (issue 14) and will
// implement this same interface. Everything above it is platform-free.
type Tracker interface {
	// Protect starts tracking the block device at path (a whole disk or a
	// partition). If the device was tracked before and tracking had a gap
	// (reboot, lost state), Protect succeeds and Gap reports it.
	Protect(path string) error
	// Unprotect stops tracking the device.
	Unprotect(path string) error
	// Events delivers what the tracker sees, in order, in batches (one
	// channel operation per batch, not per write); a batch belongs to
	// the receiver. The channel is closed by Close.
	Events() <-chan []Event
	// Cut ends the current generation and returns the new one. When Cut
	// returns N+1, every event of generation <= N has been delivered on
	// Events, followed by an EventCut for N (the last event of its batch).
	Cut(ctx context.Context) (uint64, error)
	// Now returns the current time on the clock of Event.Time, such that
	// every request queued after Now returns carries a Time >= it: what
	// a read is dated with, to tell which changes it may have seen.
	Now() time.Duration
	// Completed reports whether every request of generations <= gen has
	// completed.
	Completed(gen uint64) (bool, error)
	// Gap returns a *ResyncRequiredError if tracking of the device had a
	// gap, nil otherwise.
	Gap(path string) error
	// Stats returns the counters.
	Stats() (Stats, error)
	// Close stops delivering events. If the tracker is pinned, tracking
	// goes on in the kernel for the next process to pick up; if not, it
	// ends.
	Close() error
}

// WaitCompleted polls t until every request of generations <= gen has
// completed or ctx ends.
func WaitCompleted(ctx context.Context, t Tracker, gen uint64) error {
	d := 100 * time.Microsecond
	for {
		ok, err := t.Completed(gen)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for generation %d to complete: %w", gen, ctx.Err())
		case <-time.After(d):
		}
		if d < 10*time.Millisecond {
			d *= 2
		}
	}
}

// ErrNotSupported is wrapped by every error of a tracker that this
// platform or kernel cannot provide.
var ErrNotSupported = errors.New("not supported on this platform")

// ErrCompletionUnknown: the tracker cannot tell when some requests complete.
var ErrCompletionUnknown = errors.New("completion of some requests is unknown")

// ErrResyncRequired is wrapped by every *ResyncRequiredError.
var ErrResyncRequired = errors.New("resync required")

// ResyncRequiredError says that tracking of a disk had a gap, so changes
// may have been missed: the disk must be compared with its replica.
type ResyncRequiredError struct {
	Disk   string
	Reason string
}

func (e *ResyncRequiredError) Error() string {
	return fmt.Sprintf("%s: tracking gap (%s): resync required", e.Disk, e.Reason)
}

// Unwrap makes errors.Is(err, ErrResyncRequired) true.
func (e *ResyncRequiredError) Unwrap() error { return ErrResyncRequired }

// Hint tells an operator what happens and what to do.
func (e *ResyncRequiredError) Hint() string {
	return "changes made while the tracker was not running cannot be known; " +
		"the agent compares the disk with its replica block by block and sends only what differs"
}

// DeviceError is returned for a path that cannot be protected.
type DeviceError struct {
	Path string
	Err  error
	// Remedy tells the operator what to do.
	Remedy string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("protect %s: %v", e.Path, e.Err)
}

func (e *DeviceError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *DeviceError) Hint() string { return e.Remedy }

// MaxBatch is the most events one batch on Events holds.
const MaxBatch = 256

// PinError is a problem with the pin directory.
type PinError struct {
	Dir string
	Err error
}

func (e *PinError) Error() string { return fmt.Sprintf("tracker pins in %s: %v", e.Dir, e.Err) }
func (e *PinError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *PinError) Hint() string {
	return "remove " + e.Dir + " to start tracking anew; the disks will then be resynced"
}
