package agent

import (
	"context"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestCoarsenCoversAndBounds: the persisted ranges always cover what was
// pending, and there are at most the bound of them.
func TestCoarsenCoversAndBounds(t *testing.T) {
	var rs []tracker.Range
	for i := int64(0); i < 5000; i++ {
		rs = append(rs, tracker.Range{Off: i*i*4096 + 512, Len: 4096 + i%3*512})
	}
	for _, max := range []int{1, 10, 1024, 5000} {
		got := coarsen(rs, max)
		if len(got) > max {
			t.Errorf("max %d: %d ranges", max, len(got))
		}
		var s tracker.Set
		for _, r := range got {
			s.Add(r.Off, r.Len)
		}
		for _, r := range rs {
			if !s.Covers(r.Off, r.Len) {
				t.Fatalf("max %d: [%d,+%d) not covered", max, r.Off, r.Len)
			}
		}
	}
	if got := coarsen(rs[:10], 1024); len(got) != 10 || got[3] != rs[3] {
		t.Errorf("ranges within the bound changed: %v", got)
	}
}

// fakeChangeLog stands for the kernel's change log (crashlog.go): the
// agent persists its pending regions only with one.
type fakeChangeLog struct{}

func (fakeChangeLog) ArmChangeLog(string) (bool, error)         { return true, nil }
func (fakeChangeLog) ChangeLog(string) ([]tracker.Range, error) { return nil, nil }
func (fakeChangeLog) SettleChangeLog([]string, uint64) error    { return nil }

// persistedCovers reports whether the regions a crash would read again
// now cover [off, off+n), and their bytes.
func persistedCovers(a *Agent, off, n int64) (bool, int64) {
	pd := a.pendingNow(0).Disks[a.disks[0].name]
	var s tracker.Set
	for _, r := range pd.Ranges {
		s.Add(r[0], r[1])
	}
	return s.Covers(off, n), pd.Bytes
}

// TestPendingDropsAcknowledgedReads: a region a round read stays in the
// persisted pending set while the segment that holds it is not
// acknowledged, and leaves it once the server has acknowledged that
// segment, before the next cut: a crash then reads again what is not
// durable, not the round's reads the server already holds. A change made
// since is still in the set.
func TestPendingDropsAcknowledgedReads(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.clog = fakeChangeLog{}
	d := ta.disks[0]
	ta.round(t) // initial sync
	ta.round(t) // point of generation 1
	const off, n = 64 << 10, 8 << 10
	ta.rewrite(t, 0, off, n, 0)
	ta.round(t) // reads it into the open segment
	if ok, _ := persistedCovers(ta.Agent, off, n); !ok {
		t.Fatal("a read in a segment not sealed yet is not in the persisted pending set")
	}
	if err := d.w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := persistedCovers(ta.Agent, off, n); !ok {
		t.Fatal("a read in a segment not acknowledged yet is not in the persisted pending set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.up.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for st := d.up.Status(); st.Queued > 0 || st.Bytes > 0; st = d.up.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("segments not acknowledged by the fake server: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	const off2 = 128 << 10
	ta.rewrite(t, 0, off2, n, 0) // observed, not folded: no cut since
	deadline = time.Now().Add(10 * time.Second)
	for {
		ta.mu.Lock()
		seen := ta.rounds.Unfolded(d.name)
		ta.mu.Unlock()
		if seen > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change was not observed")
		}
		time.Sleep(time.Millisecond)
	}
	ok, bytes := persistedCovers(ta.Agent, off, n)
	if ok || bytes != n {
		t.Errorf("after the ack: read region still persisted %v, %d bytes pending; want only the %d bytes changed since", ok, bytes, n)
	}
	if ok, _ := persistedCovers(ta.Agent, off2, n); !ok {
		t.Error("a change observed since the last cut is not in the persisted pending set")
	}
}

// TestRereadLeavesOutChangesReportedSince: what a start after a crash
// reads again is all pending, and what it counts as read again leaves out
// the regions the tracker reports changed before the first round's cut
// (read anyway), once.
func TestRereadLeavesOutChangesReportedSince(t *testing.T) {
	r := newRounds([]string{"d"})
	var s tracker.Set
	s.Add(0, 64<<10)
	s.Add(128<<10, 64<<10)
	r.MarkRecovered("d", &s)
	if _, ok := r.Reread("d"); ok {
		t.Fatal("re-read known before the first round")
	}
	r.Observe("d", 128<<10, 64<<10, 1, 1) // written while no agent ran
	r.Observe("d", 512<<10, 4096, 1, 1)   // not in what was recovered
	r.Observe("d", 0, 4096, 2, 1)         // after the cut: not yet
	r.Begin(2)
	if n, ok := r.Reread("d"); !ok || n != 64<<10 {
		t.Errorf("re-read %d (%v), want %d", n, ok, 64<<10)
	}
	if _, ok := r.Reread("d"); ok {
		t.Error("re-read reported twice")
	}
	if got, want := r.Pending("d"), int64(128<<10+4096); got != want {
		t.Errorf("pending %d, want %d (all that was recovered and the change)", got, want)
	}
}

// TestTrimTaking: the journaled chunks leave the ranges a round took from
// the front, a range split into several chunks shrinks without changing
// the caller's list, and a chunk out of order changes nothing.
func TestTrimTaking(t *testing.T) {
	orig := []tracker.Range{{Off: 4096, Len: 3 << 20}, {Off: 8 << 20, Len: 4096}, {Off: 9 << 20, Len: 8192}}
	rs := orig
	rs = trimTaking(rs, 0, 1<<20+4096) // aligned down, split at maxRead
	if len(rs) != 3 || rs[0] != (tracker.Range{Off: 1<<20 + 4096, Len: 2 << 20}) || orig[0].Off != 4096 {
		t.Fatalf("after the first chunk: %v (the round's list: %v)", rs, orig)
	}
	rs = trimTaking(rs, 1<<20+4096, 3<<20+4096)
	if len(rs) != 2 || rs[0] != orig[1] {
		t.Fatalf("after the range's last chunk: %v", rs)
	}
	if got := trimTaking(rs, 9<<20, 9<<20+8192); len(got) != 2 {
		t.Fatalf("a chunk out of order trimmed %v to %v", rs, got)
	}
	rs = trimTaking(rs, 8<<20, 8<<20+4096)
	rs = trimTaking(rs, 9<<20, 9<<20+8192)
	if len(rs) != 0 {
		t.Fatalf("all journaled, left %v", rs)
	}
}
