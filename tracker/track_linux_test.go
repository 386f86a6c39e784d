//go:build linux

package tracker_test

import (
	"fmt"
	"math/rand"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

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
	dirty := countKind(evs, tracker.EventDirty)
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
