//go:build linux

package tracker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

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
