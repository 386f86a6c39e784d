//go:build linux

package tracker_test

import (
	"context"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

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
// countKind returns how many events of evs are of kind k.
func countKind(evs []tracker.Event, k tracker.EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

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
