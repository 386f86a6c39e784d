//go:build linux

package tracker_test

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// bpfMapRSS returns the resident bytes of this process's mappings of BPF
// maps (/proc/self/smaps): the rings and the bitmap the tracker maps, all
// their pages resident from the mmap on.
func bpfMapRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	inMap := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// The header of a mapping: range, perms, offset, dev, inode, name.
			inMap = len(fields) >= 6 && fields[5] == "anon_inode:bpf-map"
			continue
		}
		if inMap && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			n += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRingSizesAndMemory: without completion events (the agent's way) the
// ring buffer carries only cut markers and is small; the queue rings keep
// their size. The reader maps the ring buffer twice, all of it resident:
// at 8 MiB it made 16 MiB of the agent's 74.5 MiB (issue 15, target 64).
func TestRingSizesAndMemory(t *testing.T) {
	testenv.RequireBPF(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Each CPU gets the largest power of two of records that fits in its
	// share, at least 16.
	queues := func(share int) int {
		per := 16
		for per*2*int(tracker.QueueRecordSize) <= share/ncpu {
			per *= 2
		}
		return ncpu * per * int(tracker.QueueRecordSize)
	}
	cases := []struct {
		name           string
		opts           tracker.Options
		events, queues int
	}{
		{"default", tracker.Options{}, tracker.SmallRingBufferSize, queues(tracker.DefaultQueueRingSize)},
		{"completions", tracker.Options{CompletionEvents: true}, tracker.DefaultRingBufferSize, queues(tracker.DefaultQueueRingSize)},
		{"ring given", tracker.Options{RingBufferSize: 1 << 20}, 1 << 20, queues(1 << 18)},
		{"both given", tracker.Options{RingBufferSize: 1 << 20, QueueRingSize: 4 << 20}, 1 << 20, queues(4 << 20)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := bpfMapRSS(t)
			tr, err := tracker.Open(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := tr.Detach(); err != nil {
					t.Errorf("detach: %v", err)
				}
			}()
			events, queues := tracker.RingSizes(tr)
			if events != c.events || queues != c.queues {
				t.Errorf("ring buffer %d, queue rings %d bytes; want %d, %d", events, queues, c.events, c.queues)
			}
			if c.name != "default" {
				return
			}
			// The default's mapped memory: the dirty bitmap (2 MiB), the
			// queue rings, the ring buffer twice, a few pages.
			rss := bpfMapRSS(t) - before
			t.Logf("mapped BPF maps: %.1f MiB resident", float64(rss)/(1<<20))
			if limit := int64(2<<20 + queues + 2*events + 1<<20); rss > limit {
				t.Errorf("the default tracker's mappings hold %d bytes resident; want at most %d", rss, limit)
			}
			if rss > 8<<20 {
				t.Errorf("the default tracker's mappings hold %.1f MiB resident: the agent's target is 64 MiB in all (issue 15)", float64(rss)/(1<<20))
			}
		})
	}
}

// TestFullRingBufferLosesNoChange: completion events on a one-page ring
// buffer, the consumer stalled (EventBuffer 1, nothing read): the ring
// fills, completion events that find it full are not sent (Completed
// still counts their writes), a cut made meanwhile waits until the
// consumer reads again (its marker waits for room in the ring), and every
// write is reported.
func TestFullRingBufferLosesNoChange(t *testing.T) {
	tr := openTracker(t, tracker.Options{RingBufferSize: os.Getpagesize(), QueueRingSize: tracker.DefaultQueueRingSize,
		CompletionEvents: true, EventBuffer: 1, BitmapGranularity: 4096})
	loop := testenv.NewLoop(t, 64*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	tr.Events() // the reader starts, and stalls once a batch waits
	w := newWriter(t, loop.Path)
	var written tracker.Set
	const writes = 500
	for i := 0; i < writes; i++ {
		off := int64(i) * 2 * 4096
		w.writeDirect(off, 4096)
		written.Add(off, 4096)
	}
	type cutResult struct {
		gen uint64
		err error
	}
	done := make(chan cutResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		gen, err := tr.Cut(ctx)
		done <- cutResult{gen, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("cut returned (%d, %v) while nobody read the events", r.gen, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	c := collect(t, tr)
	r := <-done
	if r.err != nil {
		t.Fatalf("cut: %v", r.err)
	}
	c.waitFor(func() bool { return c.cuts[r.gen-1] }, "cut marker")
	evs := c.snapshot()
	requireCovered(t, reported(evs, loop.Path), &written, "full ring buffer")
	completed := countKind(evs, tracker.EventCompleted)
	if completed >= writes {
		t.Fatalf("%d completion events for %d writes: the one-page ring buffer never filled, the test tests nothing", completed, writes)
	}
	if ok, err := tr.Completed(r.gen - 1); err != nil || !ok {
		t.Errorf("Completed(%d) = %v, %v; want true: every write returned", r.gen-1, ok, err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes: %d completion events sent, stats %+v", writes, completed, st.Disks[0])
	if st.Disks[0].Lost != 0 || st.Disks[0].Drops != 0 {
		t.Errorf("lost %d, drops %d: the queue rings had room for every write", st.Disks[0].Lost, st.Disks[0].Drops)
	}
	if err := tr.Gap(loop.Path); err != nil {
		t.Errorf("gap: %v", err)
	}
}
