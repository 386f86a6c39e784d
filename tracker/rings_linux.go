//go:build linux

package tracker

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// A record of the queue rings and of the ring buffer is a struct lb_event
// of tracker.bpf.c, lbbpf.TrackerLbEvent in Go. The reader decodes its
// fields at the offsets of that generated type (constants: the same code
// as literal offsets), so regenerating after a change of the C struct
// moves them too; TestRecordLayout ties them to the object's BTF.
const (
	qrecSize = int(unsafe.Sizeof(lbbpf.TrackerLbEvent{}))
	// recMin is the shortest record the reader accepts: every field but
	// the trailing padding.
	recMin = int(unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Pad))

	recID     = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Id)
	recSector = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Sector)
	recTs     = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Ts)
	recGen    = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Gen)
	recBytes  = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Bytes)
	recDev    = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Dev)
	recKind   = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Kind)
	recOp     = unsafe.Offsetof(lbbpf.TrackerLbEvent{}.Op)
)

// qposStride is QPOS_STRIDE of tracker.bpf.c: words per CPU in qpos, so
// that a CPU's head and tail sit on cache lines of their own.
const qposStride = 16

// mapQueues maps what user space shares with the program through memory:
// the queue rings and their positions, the clock and the disk table.
func (t *Linux) mapQueues() error {
	n := int(t.maps.Qring.MaxEntries()) * qrecSize
	b, err := unix.Mmap(t.maps.Qring.FD(), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue rings: %w", err)
	}
	t.qringMmap, t.qring = b, b
	words := int(t.maps.Qpos.MaxEntries())
	p, err := unix.Mmap(t.maps.Qpos.FD(), 0, words*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue positions: %w", err)
	}
	t.qposMmap = p
	t.qpos = unsafe.Slice((*uint64)(unsafe.Pointer(&p[0])), words)
	c, err := unix.Mmap(t.maps.Clock.FD(), 0, int(max(8, t.maps.Clock.ValueSize())), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue clock: %w", err)
	}
	t.clockMmap, t.clock = c, (*uint64)(unsafe.Pointer(&c[0]))
	t.Now()
	n = int(t.maps.DiskFast.MaxEntries()) * int(unsafe.Sizeof(lbbpf.TrackerLbDiskFast{}))
	f, err := unix.Mmap(t.maps.DiskFast.FD(), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap disk table: %w", err)
	}
	t.diskFastMmap = f
	t.diskFast = unsafe.Slice((*lbbpf.TrackerLbDiskFast)(unsafe.Pointer(&f[0])), t.maps.DiskFast.MaxEntries())
	return nil
}

func (t *Linux) mapBitmap() error {
	n := t.opts.BitmapWords * 8
	b, err := unix.Mmap(t.maps.Dirty.FD(), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap dirty bitmap: %w", err)
	}
	t.mmap = b
	t.dirty = unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), t.opts.BitmapWords)
	return nil
}

// Now returns the monotonic time (CLOCK_MONOTONIC, ns since boot) after
// handing it to the kernel program, which stamps queue events with the
// last time handed to it rather than read the clock for every write: a
// request queued after Now returns T carries a Time >= T, and every
// request carries a Time no later than when it was queued. The reader
// hands the time over on every poll (so queue times are at most a few
// milliseconds early while it keeps up); call Now when an event must be
// dated against something that just happened, such as the end of a read.
func (t *Linux) Now() time.Duration {
	now := uint64(MonotonicNow())
	t.clockMu.RLock()
	defer t.clockMu.RUnlock()
	if t.clock == nil {
		return time.Duration(now)
	}
	for {
		old := atomic.LoadUint64(t.clock)
		if old >= now || atomic.CompareAndSwapUint64(t.clock, old, now) {
			return time.Duration(now)
		}
	}
}

// MonotonicNow reads the clock of Event.Time (CLOCK_MONOTONIC, since
// boot) without handing it to the kernel program: to measure how old a
// change is, not to date a read (see Now).
func MonotonicNow() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
