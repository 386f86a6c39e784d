//go:build linux

package tracker_test

import (
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestChangeLog: the kernel's change log holds every region written since
// the last settle of its generation: a settle at cut N clears only what
// came before the cut, never a write of generation N; a process that
// adopts the pins finds the log armed and its regions there; a disk
// protected anew starts an empty log.
func TestChangeLog(t *testing.T) {
	testenv.RequireBPF(t)
	pins := testenv.BPFFSDir(t)
	loop := testenv.NewLoop(t, 64*mib)
	first, err := tracker.Open(tracker.Options{PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Protect(loop.Path); err != nil {
		first.Detach()
		t.Fatal(err)
	}
	if armed, err := first.ArmChangeLog(loop.Path); err != nil || armed {
		first.Detach()
		t.Fatalf("first arm: armed %v, err %v; want a new log", armed, err)
	}
	c := collect(t, first)
	w := newWriter(t, loop.Path)
	w.writeDirect(1*mib, 64<<10) // generation g
	gen := c.cut()               // now gen = g+1
	w.writeDirect(5*mib, 4096)   // generation g+1
	has := func(tr *tracker.Linux, what string, want, not []int64) {
		t.Helper()
		rs, err := tr.ChangeLog(loop.Path)
		if err != nil {
			t.Fatal(err)
		}
		var s tracker.Set
		for _, r := range rs {
			s.Add(r.Off, r.Len)
		}
		for _, off := range want {
			if !s.Covers(off, 4096) {
				t.Errorf("%s: log %v misses offset %d", what, rs, off)
			}
		}
		for _, off := range not {
			if s.Covers(off, 1) {
				t.Errorf("%s: log %v still holds offset %d", what, rs, off)
			}
		}
		if s.Bytes() > 4*(64<<10) {
			t.Errorf("%s: log holds %d bytes for two small writes", what, s.Bytes())
		}
	}
	has(first, "before a settle", []int64{1 * mib, 5 * mib}, nil)
	if err := first.SettleChangeLog([]string{loop.Path}, gen+1); err == nil {
		t.Error("settle of a generation not cut yet succeeded")
	}
	if err := first.SettleChangeLog([]string{loop.Path}, gen); err != nil {
		t.Fatal(err)
	}
	has(first, "after settling the cut", []int64{5 * mib}, []int64{1 * mib})
	first.Close() // pins stay, as after a kill -9

	w.writeDirect(9*mib, 4096) // while no process runs
	second, err := tracker.Open(tracker.Options{PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Detach() })
	if err := second.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if armed, err := second.ArmChangeLog(loop.Path); err != nil || !armed {
		t.Fatalf("arm after adopting: armed %v, err %v; want the running log", armed, err)
	}
	has(second, "after adopting", []int64{5 * mib, 9 * mib}, []int64{1 * mib})
}
