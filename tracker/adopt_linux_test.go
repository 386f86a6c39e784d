//go:build linux

package tracker_test

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestTrackRestartWithPins stops the tracking process while a writer goes
// on and starts a new one on the same pins: every write is reported by one
// of them.
func TestTrackRestartWithPins(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	state := filepath.Join(t.TempDir(), "tracker.json")
	loop := testenv.NewLoop(t, 64*mib)
	// Whatever step fails, the pinned programs go with the test: with
	// their pins removed and no process holding them, they detach.
	t.Cleanup(func() {
		ents, _ := os.ReadDir(pins)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(pins, e.Name()))
		}
	})

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
	// The adopted hooks' skipped runs are watched, as a fresh tracker's
	// are: each program behind a pinned link is one whose counters are read.
	st, err := second.Stats()
	if err != nil {
		t.Fatal(err)
	}
	watched := map[uint32]bool{}
	for _, id := range tracker.WatchedPrograms(second) {
		watched[id] = true
	}
	links := 0
	for _, p := range st.Programs {
		if p.LinkID == 0 {
			continue
		}
		links++
		if !watched[p.ID] {
			t.Errorf("adopted program %s (id %d) has its skipped runs unwatched (watched: %v)", p.Name, p.ID, watched)
		}
	}
	if links == 0 {
		t.Errorf("no adopted program listed: %+v", st.Programs)
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
