//go:build linux

package tracker_test

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

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
