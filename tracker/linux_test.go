//go:build linux

package tracker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

const mib = 1 << 20

// collector consumes a tracker's events in the background.
type collector struct {
	t      *testing.T
	tr     tracker.Tracker
	mu     sync.Mutex
	events []tracker.Event
	cuts   map[uint64]bool
	cond   *sync.Cond
	done   chan struct{}
}

func collect(t *testing.T, tr tracker.Tracker) *collector {
	c := &collector{t: t, tr: tr, cuts: map[uint64]bool{}, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		defer close(c.done)
		for batch := range tr.Events() {
			c.mu.Lock()
			for _, e := range batch {
				c.events = append(c.events, e)
				if e.Kind == tracker.EventCut {
					c.cuts[e.Extent.Gen] = true
				}
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}()
	return c
}

// cut cuts and returns once every event of the cut generation is in.
func (c *collector) cut() uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gen, err := c.tr.Cut(ctx)
	if err != nil {
		c.t.Fatalf("cut: %v", err)
	}
	c.waitFor(func() bool { return c.cuts[gen-1] }, "cut marker")
	return gen
}

func (c *collector) waitFor(cond func() bool, what string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		c.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		c.mu.Lock()
	}
}

func (c *collector) snapshot() []tracker.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tracker.Event(nil), c.events...)
}

// reported returns the union of reported extents (queued and dirty) of a disk.
func reported(evs []tracker.Event, disk string) *tracker.Set {
	var s tracker.Set
	for _, e := range evs {
		if (e.Kind == tracker.EventQueued || e.Kind == tracker.EventDirty) && e.Extent.Disk == disk {
			s.Add(e.Extent.Offset, e.Extent.Length)
		}
	}
	return &s
}

// requireCovered fails unless every range of want is covered by got.
func requireCovered(t *testing.T, got *tracker.Set, want *tracker.Set, what string) {
	t.Helper()
	missing := 0
	for _, r := range want.Ranges() {
		if !got.Covers(r.Off, r.Len) {
			if missing < 5 {
				t.Errorf("%s: written range [%d,+%d) not covered by reported extents", what, r.Off, r.Len)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d written ranges not covered", what, missing, want.Len())
	}
}

func openTracker(t *testing.T, opts tracker.Options) *tracker.Linux {
	t.Helper()
	testenv.RequireBPF(t)
	tr, err := tracker.Open(opts)
	if err != nil {
		t.Fatalf("open tracker: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Detach(); err != nil {
			t.Errorf("detach: %v", err)
		}
	})
	return tr
}

// alignedBuf returns page-aligned memory for O_DIRECT.
func alignedBuf(t testing.TB, n int) []byte {
	n = (n + 4095) &^ 4095
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

type writer struct {
	t      testing.TB
	direct *os.File
	cached *os.File
	buf    []byte
	align  int64 // logical block size: O_DIRECT offsets and sizes are multiples
}

func newWriter(t testing.TB, path string) *writer {
	d, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s O_DIRECT: %v", path, err)
	}
	c, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { d.Close(); c.Close() })
	bs, err := unix.IoctlGetInt(int(d.Fd()), unix.BLKSSZGET)
	if err != nil {
		t.Fatalf("BLKSSZGET %s: %v", path, err)
	}
	w := &writer{t: t, direct: d, cached: c, buf: alignedBuf(t, 4*mib), align: int64(bs)}
	rand.New(rand.NewSource(1)).Read(w.buf)
	return w
}

func (w *writer) writeDirect(off, n int64) {
	w.t.Helper()
	if _, err := w.direct.WriteAt(w.buf[:n], off); err != nil {
		w.t.Fatalf("O_DIRECT write [%d,+%d): %v", off, n, err)
	}
}

func (w *writer) writeBuffered(off, n int64) {
	w.t.Helper()
	if _, err := w.cached.WriteAt(w.buf[:n], off); err != nil {
		w.t.Fatalf("write [%d,+%d): %v", off, n, err)
	}
	if err := w.cached.Sync(); err != nil {
		w.t.Fatalf("fsync: %v", err)
	}
}

func (w *writer) ioctlRange(req uint, off, n int64) {
	w.t.Helper()
	r := [2]uint64{uint64(off), uint64(n)}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, w.direct.Fd(), uintptr(req), uintptr(unsafe.Pointer(&r[0]))); errno != 0 {
		w.t.Fatalf("ioctl %#x [%d,+%d): %v", req, off, n, errno)
	}
}

func (w *writer) discard(off, n int64) { w.ioctlRange(unix.BLKDISCARD, off, n) }
func (w *writer) zeroOut(off, n int64) { w.ioctlRange(unix.BLKZEROOUT, off, n) }
func randSize(r *rand.Rand, align int64) int64 {
	// 512 B to 4 MiB, skewed towards small sizes.
	n := int64(512) << r.Intn(14)
	n += r.Int63n(n)
	n = min(n, 4*mib)
	return max(align, n/align*align)
}

// workload issues random writes of every kind and returns what it touched;
// directOnly collects the byte ranges written with O_DIRECT, discard and
// write-zeroes only (no page cache), for the exactness check.
func workload(t *testing.T, w *writer, base, size int64, seed int64, buffered bool) (all, exact *tracker.Set) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	all, exact = &tracker.Set{}, &tracker.Set{}
	for i := 0; i < 120; i++ {
		kind := r.Intn(10)
		switch {
		case kind < 5: // O_DIRECT, aligned to the logical block size
			n := randSize(r, w.align)
			off := base + r.Int63n((size-n)/w.align)*w.align
			w.writeDirect(off, n)
			all.Add(off, n)
			exact.Add(off, n)
		case kind < 7 && buffered: // buffered + fsync, any alignment
			n := 1 + r.Int63n(256<<10)
			off := base + r.Int63n(size-n)
			w.writeBuffered(off, n)
			all.Add(off, n)
		case kind < 9: // discard, 4 KiB aligned (the loop device's discard granularity)
			n := max(4096, randSize(r, 4096))
			off := base + r.Int63n((size-n)/4096)*4096
			w.discard(off, n)
			all.Add(off, n)
			exact.Add(off, n)
		default:
			n := randSize(r, w.align)
			off := base + r.Int63n((size-n)/w.align)*w.align
			w.zeroOut(off, n)
			all.Add(off, n)
			exact.Add(off, n)
		}
	}
	return all, exact
}

// checkCompletions checks every queued request was reported completed.
func checkCompletions(t *testing.T, tr *tracker.Linux, evs []tracker.Event, gen uint64) {
	t.Helper()
	queued, done := map[uint64]bool{}, map[uint64]bool{}
	for _, e := range evs {
		switch e.Kind {
		case tracker.EventQueued:
			queued[e.ID] = true
		case tracker.EventCompleted:
			if !queued[e.ID] {
				t.Errorf("completion of request %d before it was queued", e.ID)
			}
			done[e.ID] = true
		}
	}
	for id := range queued {
		if !done[id] {
			t.Errorf("request %d never reported completed", id)
		}
	}
	ok, err := tr.Completed(gen - 1)
	if err != nil || !ok {
		t.Errorf("Completed(%d) = %v, %v; want true: every write returned", gen-1, ok, err)
	}
}

func TestTrackLoopRandomWrites(t *testing.T) {
	tr := openTracker(t, tracker.Options{CompletionEvents: true})
	loop := testenv.NewLoop(t, 256*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	w := newWriter(t, loop.Path)

	t.Run("direct", func(t *testing.T) {
		start := len(c.snapshot())
		all, exact := workload(t, w, 0, 256*mib, 1, false)
		gen := c.cut()
		evs := c.snapshot()[start:]
		got := reported(evs, loop.Path)
		requireCovered(t, got, all, "O_DIRECT/discard/zeroout")
		// Nothing outside what was written: the reported set minus the
		// written set is empty.
		for _, r := range got.Ranges() {
			if !exact.Covers(r.Off, r.Len) {
				t.Errorf("reported [%d,+%d) that was never written", r.Off, r.Len)
			}
		}
		checkCompletions(t, tr, evs, gen)
		ops := map[tracker.Op]int{}
		for _, e := range evs {
			if e.Kind == tracker.EventQueued {
				ops[e.Extent.Op]++
			}
		}
		for _, op := range []tracker.Op{tracker.OpWrite, tracker.OpDiscard, tracker.OpWriteZeroes} {
			if ops[op] == 0 {
				t.Errorf("no %s extents reported: %v", op, ops)
			}
		}
	})
	t.Run("buffered", func(t *testing.T) {
		start := len(c.snapshot())
		all, _ := workload(t, w, 0, 256*mib, 2, true)
		gen := c.cut()
		evs := c.snapshot()[start:]
		requireCovered(t, reported(evs, loop.Path), all, "buffered+fsync")
		checkCompletions(t, tr, evs, gen)
	})
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Disks) != 1 || st.Disks[0].Events == 0 || st.Disks[0].Drops != 0 || st.Disks[0].Lost != 0 {
		t.Errorf("stats = %+v; want one disk with events and no drops", st)
	}
	if err := tr.Gap(loop.Path); err != nil {
		t.Errorf("gap on a fresh tracker: %v", err)
	}
}

func TestTrackZram(t *testing.T) {
	tr := openTracker(t, tracker.Options{CompletionEvents: true})
	z := testenv.NewZram(t, 128*mib)
	if err := tr.Protect(z.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	w := newWriter(t, z.Path)
	all, exact := workload(t, w, 0, 128*mib, 3, false)
	gen := c.cut()
	evs := c.snapshot()
	got := reported(evs, z.Path)
	requireCovered(t, got, all, "zram")
	for _, r := range got.Ranges() {
		if !exact.Covers(r.Off, r.Len) {
			t.Errorf("zram: reported [%d,+%d) that was never written", r.Off, r.Len)
		}
	}
	checkCompletions(t, tr, evs, gen)
}

func TestTrackPartitions(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 96*mib, testenv.WithPartitions(32, 32))
	p1, p2 := loop.Partition(1), loop.Partition(2)
	start2 := loop.PartitionStart(2)
	if start2 <= 0 {
		t.Fatalf("partition 2 starts at %d", start2)
	}

	t.Run("whole disk protected, writes through a partition", func(t *testing.T) {
		if err := tr.Protect(loop.Path); err != nil {
			t.Fatal(err)
		}
		defer tr.Unprotect(loop.Path)
		c := collect(t, tr)
		w := newWriter(t, p2)
		all, exact := workload(t, w, 0, loop.PartitionSize(2), 4, false)
		c.cut()
		got := reported(c.snapshot(), loop.Path)
		var shifted, shiftedExact tracker.Set
		for _, r := range all.Ranges() {
			shifted.Add(start2+r.Off, r.Len)
		}
		for _, r := range exact.Ranges() {
			shiftedExact.Add(start2+r.Off, r.Len)
		}
		requireCovered(t, got, &shifted, "partition writes at whole-disk offsets")
		for _, r := range got.Ranges() {
			if !shiftedExact.Covers(r.Off, r.Len) {
				t.Errorf("reported [%d,+%d), not where the partition writes went", r.Off, r.Len)
			}
		}
		tr.Close()
	})
	t.Run("one partition protected", func(t *testing.T) {
		tr := openTracker(t, tracker.Options{})
		if err := tr.Protect(p2); err != nil {
			t.Fatal(err)
		}
		c := collect(t, tr)
		w1, w2 := newWriter(t, p1), newWriter(t, p2)
		w1.writeDirect(0, 64<<10)
		w2.writeDirect(8192, 4096)
		c.cut()
		evs := c.snapshot()
		for _, e := range evs {
			if e.Kind == tracker.EventQueued && (e.Extent.Offset < start2 || e.Extent.Disk != p2) {
				t.Errorf("reported %+v: a write outside the protected partition", e.Extent)
			}
		}
		if !reported(evs, p2).Covers(start2+8192, 4096) {
			t.Errorf("write to the protected partition not reported at offset %d: %+v", start2+8192, evs)
		}
	})
}

func TestTrackOnlyProtected(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	prot := testenv.NewLoop(t, 32*mib)
	other := testenv.NewLoop(t, 32*mib)
	if err := tr.Protect(prot.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	wp, wo := newWriter(t, prot.Path), newWriter(t, other.Path)
	for i := int64(0); i < 20; i++ {
		wo.writeDirect(i*65536, 65536)
		wp.writeDirect(i*65536, 4096)
	}
	wo.discard(0, mib)
	c.cut()
	for _, e := range c.snapshot() {
		if e.Extent.Disk != "" && e.Extent.Disk != prot.Path {
			t.Errorf("event for an unprotected disk: %+v", e)
		}
	}
	if n := reported(c.snapshot(), prot.Path).Bytes(); n != 20*4096 {
		t.Errorf("reported %d bytes on the protected disk, want %d", n, 20*4096)
	}
}

// heldWrite is an O_DIRECT write that a slow FUSE file holds.
type heldWrite struct {
	t        *testing.T
	fs       *testenv.SlowFS
	wrote    chan error
	released bool
}

// holdWrite starts an O_DIRECT write of n bytes at off and returns once
// the FUSE file holds it. The write is let go at the end of the test in
// any case.
func holdWrite(t *testing.T, fs *testenv.SlowFS, w *writer, off, n int64) *heldWrite {
	t.Helper()
	h := &heldWrite{t: t, fs: fs, wrote: make(chan error, 1)}
	fs.Hold()
	t.Cleanup(func() {
		if !h.released {
			fs.Release()
		}
	})
	go func() {
		_, err := w.direct.WriteAt(w.buf[:n], off)
		h.wrote <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fs.WaitHeld(ctx, 1); err != nil {
		t.Fatalf("write never reached the FUSE file: %v", err)
	}
	return h
}

// release lets the write go and fails the test if it failed.
func (h *heldWrite) release() {
	h.t.Helper()
	h.fs.Release()
	h.released = true
	if err := <-h.wrote; err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

func TestTrackWriteInFlight(t *testing.T) {
	testenv.RequireBPF(t)
	fs := testenv.NewSlowFS(t)
	backing := fs.CreateFile("disk.img", 16*mib)
	loop := testenv.NewLoop(t, 16*mib, testenv.WithBacking(backing))
	tr := openTracker(t, tracker.Options{CompletionEvents: true})
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	w := newWriter(t, loop.Path)

	for _, size := range []int64{4096, 4 * mib} { // 4 MiB is split into several requests
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			start := len(c.snapshot())
			h := holdWrite(t, fs, w, 2*mib, size)
			var id uint64
			c.waitFor(func() bool {
				for _, e := range c.events[start:] {
					if e.Kind == tracker.EventQueued {
						id = e.ID
						return true
					}
				}
				return false
			}, "queued event")
			gen := c.cut()
			time.Sleep(200 * time.Millisecond)
			for _, e := range c.snapshot()[start:] {
				if e.Kind == tracker.EventCompleted && e.ID == id {
					t.Fatalf("write reported completed while the disk still holds it")
				}
			}
			if ok, err := tr.Completed(gen - 1); err != nil || ok {
				t.Fatalf("Completed(%d) = %v, %v while a write of that generation is in flight", gen-1, ok, err)
			}
			select {
			case err := <-h.wrote:
				t.Fatalf("write returned while held: %v", err)
			default:
			}
			h.release()
			c.waitFor(func() bool {
				for _, e := range c.events[start:] {
					if e.Kind == tracker.EventCompleted && e.ID == id {
						return true
					}
				}
				return false
			}, "completion event")
			if ok, err := tr.Completed(gen - 1); err != nil || !ok {
				t.Fatalf("Completed(%d) = %v, %v after the write returned", gen-1, ok, err)
			}
		})
	}
}

func TestTrackOverflowFallsBackToBitmap(t *testing.T) {
	// One page of ring buffer holds a few dozen events; the consumer is
	// stalled (EventBuffer 1) while a burst is written.
	tr := openTracker(t, tracker.Options{RingBufferSize: os.Getpagesize(), EventBuffer: 1, BitmapGranularity: 4096})
	loop := testenv.NewLoop(t, 64*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, loop.Path)
	r := rand.New(rand.NewSource(5))
	var written tracker.Set
	for i := 0; i < 2000; i++ {
		off := r.Int63n(64*mib/4096-4) * 4096
		w.writeDirect(off, 4096)
		written.Add(off, 4096)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Disks[0].Drops == 0 {
		t.Fatalf("no drops with a one-page ring buffer and 2000 writes: %+v", st.Disks[0])
	}
	c := collect(t, tr)
	c.cut()
	evs := c.snapshot()
	requireCovered(t, reported(evs, loop.Path), &written, "events plus bitmap")
	dirty := 0
	for _, e := range evs {
		if e.Kind == tracker.EventDirty {
			dirty++
		}
	}
	st, _ = tr.Stats()
	t.Logf("events %d, drops %d, bitmap regions %d", st.Disks[0].Events, st.Disks[0].Drops, st.Disks[0].BitmapRegions)
	if dirty == 0 || st.Disks[0].BitmapRegions == 0 {
		t.Errorf("no dirty regions reported from the bitmap (%d events, stats %+v)", dirty, st.Disks[0])
	}
	if st.Disks[0].Lost != 0 {
		t.Errorf("lost = %d; the bitmap covers the whole disk", st.Disks[0].Lost)
	}
	if err := tr.Gap(loop.Path); err != nil {
		t.Errorf("drops that the bitmap covered must not need a resync: %v", err)
	}
}

func TestTrackBitmapMode(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 64*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetMode(loop.Path, tracker.ModeBitmap); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	w := newWriter(t, loop.Path)
	w.writeDirect(mib, 4096)
	w.writeDirect(10*mib+4096, 200<<10)
	gen := c.cut()
	evs := c.snapshot()
	var written tracker.Set
	written.Add(mib, 4096)
	written.Add(10*mib+4096, 200<<10)
	requireCovered(t, reported(evs, loop.Path), &written, "bitmap mode")
	for _, e := range evs {
		if e.Kind == tracker.EventQueued {
			t.Errorf("bitmap mode sent an extent through the ring buffer: %+v", e)
		}
		if e.Kind == tracker.EventDirty && e.Extent.Gen != gen-1 {
			t.Errorf("dirty region stamped gen %d, want %d", e.Extent.Gen, gen-1)
		}
	}
	if ok, err := tr.Completed(gen - 1); err != nil || !ok {
		t.Errorf("Completed = %v, %v", ok, err)
	}
}

// TestTrackRestartWithPins stops the tracking process while a writer goes
// on and starts a new one on the same pins: every write is reported by one
// of them.
func TestTrackRestartWithPins(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	state := filepath.Join(t.TempDir(), "tracker.json")
	loop := testenv.NewLoop(t, 64*mib)

	first, err := tracker.Open(tracker.Options{PinDir: pins, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if first.Adopted() {
		t.Fatal("adopted pins from an empty directory")
	}
	if err := first.Protect(loop.Path); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	c1 := collect(t, first)

	w := newWriter(t, loop.Path)
	var mu sync.Mutex
	var written tracker.Set
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewSource(6))
		for {
			select {
			case <-stop:
				return
			default:
			}
			off := r.Int63n(64*mib/4096-1) * 4096
			if _, err := w.direct.WriteAt(w.buf[:4096], off); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			mu.Lock()
			written.Add(off, 4096)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	time.Sleep(200 * time.Millisecond)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	<-c1.done
	time.Sleep(300 * time.Millisecond) // writes go on with no process
	second, err := tracker.Open(tracker.Options{PinDir: pins, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Detach() })
	if !second.Adopted() {
		t.Fatal("second process did not adopt the pinned tracker")
	}
	if err := second.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if err := second.Gap(loop.Path); err != nil {
		t.Fatalf("gap after a restart with pins: %v", err)
	}
	c2 := collect(t, second)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	c2.cut()

	all := append(c1.snapshot(), c2.snapshot()...)
	mu.Lock()
	defer mu.Unlock()
	if written.Len() < 100 {
		t.Fatalf("writer made only %d writes", written.Len())
	}
	requireCovered(t, reported(all, loop.Path), &written, "across a restart")

	if err := second.Detach(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(pins); len(ents) != 0 {
		t.Errorf("pins left after Detach: %v", ents)
	}
}

func TestTrackGapDetection(t *testing.T) {
	loop := testenv.NewLoop(t, 16*mib)
	for _, tc := range []struct {
		name, bootID, reason string
	}{
		{"reboot", "00000000-0000-0000-0000-000000000000", "machine rebooted"},
		{"pins lost", "", "tracker state lost while the machine was running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireBPF(t)
			bootID := tc.bootID
			if bootID == "" {
				b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
				if err != nil {
					t.Fatal(err)
				}
				bootID = string(b[:36])
			}
			state := filepath.Join(t.TempDir(), "tracker.json")
			b, _ := json.Marshal(map[string]any{"boot_id": bootID, "disks": []string{loop.Path}})
			if err := os.WriteFile(state, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tr := openTracker(t, tracker.Options{PinDir: testenv.BPFFSDir(t), StateFile: state})
			if err := tr.Protect(loop.Path); err != nil {
				t.Fatal(err)
			}
			err := tr.Gap(loop.Path)
			var rr *tracker.ResyncRequiredError
			if !errors.As(err, &rr) || !errors.Is(err, tracker.ErrResyncRequired) || rr.Reason != tc.reason {
				t.Fatalf("Gap = %v; want a resync error with reason %q", err, tc.reason)
			}
		})
	}
}

func TestProtectRejectsNonBlockDevices(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	for _, path := range []string{"/etc/hostname", t.TempDir(), "/dev/null", "/nonexistent/disk"} {
		err := tr.Protect(path)
		var de *tracker.DeviceError
		if !errors.As(err, &de) || de.Remedy == "" {
			t.Errorf("Protect(%s) = %v; want a DeviceError with a hint", path, err)
		}
	}
	// Protecting a disk and one of its partitions at once is refused.
	loop := testenv.NewLoop(t, 64*mib, testenv.WithPartitions(16))
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(loop.Partition(1)); err == nil {
		t.Error("protected a partition of a protected disk")
	}
}

func TestTrackUnprotectWhileRunning(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 16*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	w := newWriter(t, loop.Path)
	w.writeDirect(0, 4096)
	c.cut()
	if err := tr.Unprotect(loop.Path); err != nil {
		t.Fatal(err)
	}
	start := len(c.snapshot())
	w.writeDirect(mib, 4096)
	c.cut()
	for _, e := range c.snapshot()[start:] {
		if e.Kind == tracker.EventQueued || e.Kind == tracker.EventDirty {
			t.Errorf("event after Unprotect: %+v", e)
		}
	}
	if err := tr.Unprotect(loop.Path); err == nil {
		t.Error("unprotecting twice succeeded")
	}
	// Protect again: tracked again.
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	w.writeDirect(2*mib, 4096)
	c.cut()
	if !reported(c.snapshot()[start:], loop.Path).Covers(2*mib, 4096) {
		t.Error("write after protecting again not reported")
	}
}

// TestTrackLostChangeNeedsResync grows a disk in bitmap mode past the
// bitmap sized when it was protected: the write cannot be recorded, is
// counted as lost, and Gap asks for a resync.
func TestTrackLostChangeNeedsResync(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 16*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetMode(loop.Path, tracker.ModeBitmap); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(loop.Backing, 64*mib); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", loop.Path).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	w := newWriter(t, loop.Path)
	w.writeDirect(40*mib, 4096)
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Disks[0].Lost == 0 {
		t.Fatalf("write beyond the bitmap not counted as lost: %+v", st.Disks[0])
	}
	err = tr.Gap(loop.Path)
	if !errors.Is(err, tracker.ErrResyncRequired) {
		t.Fatalf("Gap = %v; want resync required", err)
	}
}

// TestTrackRestartPartitionPins: a partition protected by one process is
// protected again by the next, which adopted the pins, with no gap and
// events named by the partition.
func TestTrackRestartPartitionPins(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	loop := testenv.NewLoop(t, 64*mib, testenv.WithPartitions(16, 16))
	p2 := loop.Partition(2)
	first, err := tracker.Open(tracker.Options{PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Protect(p2); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	first.Close()
	w := newWriter(t, p2)
	w.writeDirect(0, 4096) // while no process runs

	second, err := tracker.Open(tracker.Options{PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Detach() })
	if err := second.Protect(p2); err != nil {
		t.Fatalf("protect the same partition after a restart: %v", err)
	}
	c := collect(t, second)
	w.writeDirect(8192, 4096)
	c.cut()
	got := reported(c.snapshot(), p2)
	start := loop.PartitionStart(2)
	if !got.Covers(start, 4096) || !got.Covers(start+8192, 4096) {
		t.Fatalf("writes before and after the restart not both reported under %s: %+v", p2, c.snapshot())
	}
	for _, e := range c.snapshot() {
		if e.Extent.Disk != "" && e.Extent.Disk != p2 {
			t.Errorf("event named %s, want %s", e.Extent.Disk, p2)
		}
	}
}

// TestTrackGrownDisk: a whole disk that grows while protected is tracked
// past its old end.
func TestTrackGrownDisk(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 16*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	if err := os.Truncate(loop.Backing, 64*mib); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", loop.Path).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	w := newWriter(t, loop.Path)
	w.writeDirect(40*mib, 4096)
	c.cut()
	if !reported(c.snapshot(), loop.Path).Covers(40*mib, 4096) {
		t.Fatalf("write past the old end of a grown disk not reported: %+v", c.snapshot())
	}
}

// TestCutOrdersEveryEvent cuts as fast as it can while two threads write:
// after the marker of generation N, no event of a generation <= N may come.
// A cut that does not wait for queue-program runs still in progress on
// other CPUs breaks this within a few hundred cuts.
func TestCutOrdersEveryEvent(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	z := testenv.NewZram(t, 64*mib)
	if err := tr.Protect(z.Path); err != nil {
		t.Fatal(err)
	}
	c := collect(t, tr)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		f, err := os.OpenFile(z.Path, os.O_RDWR|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		buf := alignedBuf(t, 4096)
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			r := rand.New(rand.NewSource(int64(i)))
			for n := 0; ; {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.WriteAt(buf, r.Int63n(64*mib/4096)*4096); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				if n++; n%8 == 0 {
					// Let the reader keep up, so cuts stay short and many.
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
	}
	// A cut waits for the reader to pass its marker; when the reader is
	// slower than the writers (race detector, loaded machine) each cut takes
	// a ring buffer's worth of events, so the count of cuts varies widely.
	cuts := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) || cuts < 10; cuts++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := tr.Cut(ctx)
		cancel()
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("cut %d: %v", cuts, err)
		}
	}
	close(stop)
	wg.Wait()
	c.cut()
	var marked uint64 // highest generation whose marker came
	seenMark, queued, bad := false, 0, 0
	for _, e := range c.snapshot() {
		switch e.Kind {
		case tracker.EventCut:
			if seenMark && e.Extent.Gen <= marked {
				t.Errorf("marker of generation %d after the marker of %d", e.Extent.Gen, marked)
			}
			marked, seenMark = e.Extent.Gen, true
		case tracker.EventQueued:
			queued++
			if seenMark && e.Extent.Gen <= marked {
				if bad < 5 {
					t.Errorf("event of generation %d after the marker of generation %d", e.Extent.Gen, marked)
				}
				bad++
			}
		}
	}
	t.Logf("%d cuts, %d queued events, %d out of order", cuts, queued, bad)
	if queued < 1000 {
		t.Errorf("only %d writes seen during %d cuts: the test did not exercise concurrent cuts", queued, cuts)
	}
}

// TestCutWaitsForBusyCPUs drives the wait of a cut directly through the
// pinned busy counters of an adopted tracker: a CPU shown inside the queue
// program holds the cut back until it leaves. This also proves that an
// adopting process waits on the counters the attached programs update.
func TestCutWaitsForBusyCPUs(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	state := filepath.Join(t.TempDir(), "tracker.json")
	first, err := tracker.Open(tracker.Options{PinDir: pins, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	tr := openTracker(t, tracker.Options{PinDir: pins, StateFile: state})
	if !tr.Adopted() {
		t.Fatal("did not adopt the pinned tracker")
	}
	busy, err := ebpf.LoadPinnedMap(filepath.Join(pins, "cpu_local"), nil)
	if err != nil {
		t.Fatalf("busy counters are not pinned: %v", err)
	}
	defer busy.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	set := func(v uint64) error {
		vals := make([]lbbpf.TrackerLbCpuLocal, ncpu)
		vals[ncpu-1].Busy = v
		return busy.Update(uint32(0), vals, ebpf.UpdateAny)
	}
	if err := set(7); err != nil { // inside the window on the last CPU
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = tr.Cut(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "leave the tracker") {
		t.Fatalf("cut with a busy CPU returned %v; want it to wait until the deadline", err)
	}
	left := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		left <- set(8)
	}()
	defer func() {
		if err := <-left; err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := tr.Cut(ctx); err != nil {
		t.Fatalf("cut after the CPU left: %v", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("cut returned after %v, before the busy CPU left", d)
	}
}

// protectNew makes a device of the kind ("zram" or "loop"), removed when
// the test ends, and protects it with tr. It returns its path.
func protectNew(t *testing.T, tr tracker.Tracker, kind string, size int64) string {
	t.Helper()
	var path string
	if kind == "zram" {
		path = testenv.NewZram(t, size).Path
	} else {
		path = testenv.NewLoop(t, size).Path
	}
	if err := tr.Protect(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompletionEventsOff: by default no completion event travels through
// the ring buffer, and Completed still knows when every write is done.
func TestCompletionEventsOff(t *testing.T) {
	for _, dev := range []string{"zram", "loop"} {
		t.Run(dev, func(t *testing.T) {
			tr := openTracker(t, tracker.Options{})
			path := protectNew(t, tr, dev, 64*mib)
			c := collect(t, tr)
			all, _ := workload(t, newWriter(t, path), 0, 64*mib, 4, false)
			gen := c.cut()
			evs := c.snapshot()
			requireCovered(t, reported(evs, path), all, dev)
			for _, e := range evs {
				if e.Kind == tracker.EventCompleted {
					t.Fatalf("completion event %+v with CompletionEvents off", e)
				}
			}
			ok, err := tr.Completed(gen - 1)
			if err != nil || !ok {
				t.Errorf("Completed(%d) = %v, %v; want true: every write returned", gen-1, ok, err)
			}
			st, err := tr.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Disks[0].Events == 0 {
				t.Errorf("no queue events counted: %+v", st.Disks[0])
			}
		})
	}
}

// TestPinsOfAnotherVersionAreReplaced: an agent upgraded to a tracker
// program of another version takes the pinned one down, attaches its own,
// and reports a gap (so the disk is resynced) instead of refusing to start.
func TestPinsOfAnotherVersionAreReplaced(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	state := filepath.Join(t.TempDir(), "tracker.json")
	loop := testenv.NewLoop(t, 16*mib)
	first, err := tracker.Open(tracker.Options{PinDir: pins, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Protect(loop.Path); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	oldLink, err := link.LoadPinnedLink(filepath.Join(pins, "link_bio_queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	oldInfo, err := oldLink.Info()
	oldLink.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Make the pinned state claim another program version.
	st, err := ebpf.LoadPinnedMap(filepath.Join(pins, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, st.ValueSize())
	if err := st.Lookup(uint32(0), &raw); err != nil {
		t.Fatal(err)
	}
	raw[16] ^= 0x80
	if err := st.Update(uint32(0), raw, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	st.Close()

	tr := openTracker(t, tracker.Options{PinDir: pins, StateFile: state})
	if tr.Adopted() {
		t.Fatal("adopted pins of another program version")
	}
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	gap := tr.Gap(loop.Path)
	if !errors.Is(gap, tracker.ErrResyncRequired) || !strings.Contains(gap.Error(), "version") {
		t.Fatalf("gap after replacing another version's pins = %v; want a resync naming the version", gap)
	}
	newLink, err := link.LoadPinnedLink(filepath.Join(pins, "link_bio_queue"), nil)
	if err != nil {
		t.Fatalf("the new tracker is not pinned: %v", err)
	}
	newInfo, err := newLink.Info()
	newLink.Close()
	if err != nil {
		t.Fatal(err)
	}
	if newInfo.ID == oldInfo.ID {
		t.Fatalf("the pinned link is still the old one (id %d)", oldInfo.ID)
	}
	// The old link is gone from the kernel: nothing runs the old program.
	if l, err := link.NewFromID(oldInfo.ID); err == nil {
		l.Close()
		t.Fatalf("the old tracker's link %d is still attached", oldInfo.ID)
	}
	// And tracking works.
	c := collect(t, tr)
	w := newWriter(t, loop.Path)
	w.writeDirect(0, 4096)
	c.cut()
	requireCovered(t, reported(c.snapshot(), loop.Path), func() *tracker.Set { var s tracker.Set; s.Add(0, 4096); return &s }(), "after the replacement")
}

func TestBootIDAsTheKernelSpellsIt(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tracker.BootID()
	if err != nil || got != strings.TrimSpace(string(b)) {
		t.Fatalf("BootID() = %q, %v; want %q", got, err, strings.TrimSpace(string(b)))
	}
}

// TestInflightSpillsToHashMap: with a direct-mapped in-flight table of two
// slots, concurrent writes find their slot taken and are followed in the
// overflow hash map; every write must still be reported, complete, and
// leave nothing counted in flight, on blk-mq (loop) and bio-based (zram)
// devices alike.
func TestInflightSpillsToHashMap(t *testing.T) {
	for _, dev := range []string{"loop", "zram"} {
		t.Run(dev, func(t *testing.T) {
			tr := openTracker(t, tracker.Options{CompletionEvents: true, InflightSlots: 2})
			path := protectNew(t, tr, dev, 64*mib)
			c := collect(t, tr)
			// Write until enough writes have spilled (how often two writes
			// are in flight at once depends on the scheduler), at most 30 s.
			const writers, spills = 8, 20
			want := &tracker.Set{}
			var wg sync.WaitGroup
			var mu sync.Mutex
			stop := make(chan struct{})
			for g := 0; g < writers; g++ {
				w := newWriter(t, path)
				base := int64(g) * 8 * mib
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewSource(int64(g)))
					for {
						select {
						case <-stop:
							return
						default:
						}
						off := base + r.Int63n(8*mib/4096-16)*4096
						n := int64(1+r.Intn(16)) * 4096
						if _, err := w.direct.WriteAt(w.buf[:n], off); err != nil {
							t.Errorf("O_DIRECT write [%d,+%d): %v", off, n, err)
							return
						}
						mu.Lock()
						want.Add(off, n)
						mu.Unlock()
					}
				}()
			}
			var spilled uint64
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				st, err := tr.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if spilled = st.InFlightSpilled; spilled >= spills {
					break
				}
			}
			close(stop)
			wg.Wait()
			gen := c.cut()
			evs := c.snapshot()
			requireCovered(t, reported(evs, path), want, "writes spilled to the hash map")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := tracker.WaitCompleted(ctx, tr, gen-1); err != nil {
				t.Fatalf("every write returned, but the tracker does not say so: %v", err)
			}
			checkCompletions(t, tr, evs, gen)
			st, err := tr.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if spilled < spills {
				t.Errorf("%d writes spilled to the hash map in 30 s with a 2-slot table and %d concurrent writers, want %d: the overflow path was hardly exercised", spilled, writers, spills)
			}
			if st.InFlight != 0 || st.Disks[0].Lost != 0 {
				t.Errorf("in flight %d, lost %d after every write returned; want 0, 0", st.InFlight, st.Disks[0].Lost)
			}
			t.Logf("%s: %d events, %d writes spilled to the hash map", dev, st.Disks[0].Events, st.InFlightSpilled)
		})
	}
}

// TestOpenRejectsBadTableSizes: a table size out of its rule is refused
// before anything is loaded, with the rule.
func TestOpenRejectsBadTableSizes(t *testing.T) {
	cases := []struct {
		name string
		rule string
		bad  []int
		opts func(n int) tracker.Options
	}{
		{"InflightSlots", "must be a power of two from 2 to", []int{-1, 1, 3, 1000, 1<<20 + 1, 1 << 21},
			func(n int) tracker.Options { return tracker.Options{InflightSlots: n} }},
		{"DiskSlots", "must be a power of two from 1 to 1024", []int{-1, 3, 1000, 2048},
			func(n int) tracker.Options { return tracker.Options{DiskSlots: n} }},
	}
	for _, c := range cases {
		for _, n := range c.bad {
			tr, err := tracker.Open(c.opts(n))
			if err == nil {
				tr.Close()
				t.Fatalf("%s %d accepted", c.name, n)
			}
			if !strings.Contains(err.Error(), c.rule) {
				t.Errorf("%s %d: error %q does not say what is accepted", c.name, n, err)
			}
		}
	}
}

// TestDiskTableSpill protects three disks with a one-slot disk table, so
// all but one are found through the hash map: each disk's writes are
// reported, under its own name, while disks come and go and change mode,
// in the table's slot or out of it.
func TestDiskTableSpill(t *testing.T) {
	tr := openTracker(t, tracker.Options{DiskSlots: 1})
	a, b, c := testenv.NewLoop(t, 16*mib), testenv.NewLoop(t, 16*mib), testenv.NewLoop(t, 16*mib)
	col := collect(t, tr)
	ws := map[string]*writer{a.Path: newWriter(t, a.Path), b.Path: newWriter(t, b.Path), c.Path: newWriter(t, c.Path)}
	// step writes 4 KiB at off on every disk, cuts, and checks that
	// exactly the disks in want reported it (as extents, or as dirty
	// regions when dirty is set).
	step := func(what string, off int64, dirty bool, want ...string) {
		t.Helper()
		start := len(col.snapshot())
		for _, w := range ws {
			w.writeDirect(off, 4096)
		}
		col.cut()
		evs := col.snapshot()[start:]
		for path := range ws {
			got := reported(evs, path)
			if slices.Contains(want, path) != got.Covers(off, 4096) {
				t.Errorf("%s: %s: reported %v, want the write at %d reported: %v", what, path, got.Ranges(), off, slices.Contains(want, path))
			}
		}
		for _, e := range evs {
			if dirty && e.Kind == tracker.EventQueued {
				t.Errorf("%s: extent in bitmap mode: %+v", what, e)
			}
		}
	}
	for _, p := range []string{a.Path, b.Path} {
		if err := tr.Protect(p); err != nil {
			t.Fatal(err)
		}
	}
	step("two disks, one slot", 0, false, a.Path, b.Path)
	if err := tr.Unprotect(a.Path); err != nil {
		t.Fatal(err)
	}
	step("the slot's disk unprotected", mib, false, b.Path)
	if err := tr.Protect(c.Path); err != nil {
		t.Fatal(err)
	}
	step("a third disk", 2*mib, false, b.Path, c.Path)
	for _, p := range []string{b.Path, c.Path} {
		if err := tr.SetMode(p, tracker.ModeBitmap); err != nil {
			t.Fatal(err)
		}
	}
	step("both in bitmap mode", 3*mib, true, b.Path, c.Path)
	for _, p := range []string{b.Path, c.Path} {
		if err := tr.SetMode(p, tracker.ModeMetadata); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Unprotect(c.Path); err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(a.Path); err != nil {
		t.Fatal(err)
	}
	step("back in metadata mode, the first disk again", 4*mib, false, a.Path, b.Path)
}

// TestQueueTimes: a queue event's time is never before a Now that
// returned before the write nor after the write returned, and the reader
// keeps the kernel's clock moving without any call to Now.
func TestQueueTimes(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	path := protectNew(t, tr, "loop", 16*mib)
	c := collect(t, tr)
	w := newWriter(t, path)
	mono := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	check := func(off int64, lo, hi time.Duration, what string) {
		t.Helper()
		var found bool
		for _, e := range c.snapshot() {
			if e.Kind != tracker.EventQueued || e.Extent.Offset != off {
				continue
			}
			found = true
			if e.Time < lo || e.Time > hi {
				t.Errorf("%s: queue time %v, want within [%v, %v]", what, e.Time, lo, hi)
			}
		}
		if !found {
			t.Fatalf("%s: write at %d not reported", what, off)
		}
	}
	for i := int64(0); i < 20; i++ {
		lo := tr.Now()
		w.writeDirect(i*65536, 4096)
		hi := mono()
		c.cut()
		check(i*65536, lo, hi, "after Now")
	}
	// No Now for a while: the reader's polls alone date the next write
	// within a poll interval, far closer than the 2 s slept.
	time.Sleep(2 * time.Second)
	lo := mono()
	w.writeDirect(2*mib, 4096)
	hi := mono()
	c.cut()
	check(2*mib, lo-time.Second, hi, "without Now")
}

// TestUnprotectWithWriteInFlight unprotects a disk while one of its writes
// is held in flight, once while the disk holds its slot of the disk table
// and once while it is found through the hash map: when the write ends,
// its generation still completes: a completion program that skipped the
// bios of disks it no longer finds would leave the count up for ever, and
// every later cut would wait on it.
func TestUnprotectWithWriteInFlight(t *testing.T) {
	for _, spilled := range []bool{false, true} {
		t.Run(fmt.Sprintf("spilled=%v", spilled), func(t *testing.T) {
			testenv.RequireBPF(t)
			fs := testenv.NewSlowFS(t)
			loop := testenv.NewLoop(t, 16*mib, testenv.WithBacking(fs.CreateFile("disk.img", 16*mib)))
			tr := openTracker(t, tracker.Options{DiskSlots: 1})
			if spilled {
				// The first disk protected holds the only slot.
				if err := tr.Protect(testenv.NewLoop(t, 16*mib).Path); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.Protect(loop.Path); err != nil {
				t.Fatal(err)
			}
			c := collect(t, tr)
			h := holdWrite(t, fs, newWriter(t, loop.Path), mib, 4096)
			c.waitFor(func() bool { return reported(c.events, loop.Path).Covers(mib, 4096) }, "queued event")
			gen := c.cut()
			if err := tr.Unprotect(loop.Path); err != nil {
				t.Fatal(err)
			}
			if ok, err := tr.Completed(gen - 1); err != nil || ok {
				t.Fatalf("Completed(%d) = %v, %v while a write of that generation is in flight", gen-1, ok, err)
			}
			h.release()
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			if err := tracker.WaitCompleted(wctx, tr, gen-1); err != nil {
				t.Fatalf("the write returned after its disk was unprotected, but its generation never completes: %v", err)
			}
		})
	}
}
