//go:build linux

package tracker_test

import (
	"context"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestInflightDrainsUnderLoad: small O_DIRECT writes (each its own bio on
// the writer's kernel stack, the e2e tests' pattern) with O_DIRECT reads
// of the same disk and CPU hogs, cut every 50 ms: every generation's
// writes must be counted complete soon after they return.
func TestInflightDrainsUnderLoad(t *testing.T) {
	// A short run in the suite; LIFEBOAT_STRESS_SECONDS=N runs N
	// seconds with a CPU hog per CPU, as the loaded CI machine is.
	d, hogs := 8*time.Second, 0
	if s := os.Getenv("LIFEBOAT_STRESS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("LIFEBOAT_STRESS_SECONDS=%q: want a number of seconds", s)
		}
		d, hogs = time.Duration(n)*time.Second, runtime.NumCPU()
	}
	tr := openTracker(t, tracker.Options{})
	path := protectNew(t, tr, "loop", 64*mib)
	collect(t, tr)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		w := newWriter(t, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := r.Int63n(64*mib/4096) * 4096
				if _, err := w.direct.WriteAt(w.buf[:4096], off); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				if r.Intn(4) == 0 {
					n := int64(1+r.Intn(256)) * 4096
					off = r.Int63n(64*mib/4096-256) * 4096
					if _, err := w.direct.ReadAt(w.buf[:n], off); err != nil {
						t.Errorf("read: %v", err)
						return
					}
				}
			}
		}()
	}
	for range hogs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e6; i++ {
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	cuts := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); cuts++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		gen, err := tr.Cut(ctx)
		if err == nil {
			err = tracker.WaitCompleted(ctx, tr, gen-1)
		}
		cancel()
		if err != nil {
			ws, werr := tr.InFlightWrites(gen - 1)
			st, _ := tr.Stats()
			inflight, _ := os.ReadFile("/sys/block/" + path[len("/dev/"):] + "/inflight")
			t.Fatalf("cut %d: %v\nin flight by the tracker: %+v (%v)\nstats %+v\n/sys inflight: %s", cuts, err, ws, werr, st, inflight)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ := tr.Stats()
	t.Logf("%d cuts, %d events", cuts, st.Disks[0].Events)
	if cuts < 10 {
		t.Errorf("only %d cuts in %s: the test did not exercise the completion counts", cuts, d)
	}
}
