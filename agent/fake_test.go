package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// The fakes of this file let unit tests drive the agent's rounds, points
// and freezing phases without root, a kernel tracker or block devices:
// disks are regular files, the tracker reports what the test says was
// written, and the freezer only records what it was asked.

// fakeTracker is a Tracker whose changes are reported by the test (write).
type fakeTracker struct {
	mu     sync.Mutex
	gen    uint64
	events chan []tracker.Event
	closed bool
	gaps   map[string]error
	trace  *trace
	// beforeCut, if set, runs at the start of each Cut (a test hook).
	beforeCut func()
	// stuck makes Completed report writes in flight for ever, as when
	// the kernel never reports a write's completion.
	stuck atomic.Bool
	// lost makes ReapLost find the stuck write gone from its disk and
	// forget it, as the Linux tracker does with a lost completion.
	lost  atomic.Bool
	reaps atomic.Int32
}

func (f *fakeTracker) ReapLost(gen uint64) ([]tracker.InFlightWrite, error) {
	f.reaps.Add(1)
	if !f.stuck.Load() || !f.lost.Load() {
		return nil, nil
	}
	f.stuck.Store(false)
	return []tracker.InFlightWrite{{Dev: "7:0", Gen: gen, Bytes: 4096}}, nil
}

// trace records what the fakes were asked, in order.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (t *trace) add(format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.steps = append(t.steps, fmt.Sprintf(format, a...))
}

func (t *trace) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.steps...)
}

func newFakeTracker(tr *trace) *fakeTracker {
	return &fakeTracker{gen: 1, events: make(chan []tracker.Event, 4096), gaps: map[string]error{}, trace: tr}
}

// write reports a write of [off, off+n) to the disk at path, queued at
// queued (CLOCK_MONOTONIC ns), in the current generation.
func (f *fakeTracker) write(path string, off, n, queued int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events <- []tracker.Event{{Kind: tracker.EventQueued, Time: time.Duration(queued),
		Extent: tracker.Extent{Disk: path, Offset: off, Length: n, Op: tracker.OpWrite, Gen: f.gen}}}
}

func (f *fakeTracker) Protect(string) error   { return nil }
func (f *fakeTracker) Unprotect(string) error { return nil }
func (f *fakeTracker) Events() <-chan []tracker.Event {
	return f.events
}

func (f *fakeTracker) Cut(ctx context.Context) (uint64, error) {
	if f.beforeCut != nil {
		f.beforeCut()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.gen
	f.gen++
	f.events <- []tracker.Event{{Kind: tracker.EventCut, Extent: tracker.Extent{Gen: old}}}
	f.trace.add("cut %d", f.gen)
	return f.gen, nil
}

func (f *fakeTracker) Now() time.Duration                 { return time.Duration(monotonicNow()) }
func (f *fakeTracker) Completed(gen uint64) (bool, error) { return !f.stuck.Load(), nil }
func (f *fakeTracker) Gap(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gaps[path]
}

func (f *fakeTracker) AckGap(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.gaps, path)
}
func (f *fakeTracker) Adopted() bool { return true }
func (f *fakeTracker) Stats() (tracker.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return tracker.Stats{Generation: f.gen}, nil
}

func (f *fakeTracker) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.events)
	}
	return nil
}

// fakePlatform serves disks that are regular files and the fake tracker.
type fakePlatform struct {
	tr       *fakeTracker
	dirtySet map[string]bool
}

func (p *fakePlatform) checkDisk(string) error                      { return nil }
func (p *fakePlatform) checkStateDir(string, []string) error        { return nil }
func (p *fakePlatform) openTracker(string, string) (Tracker, error) { return p.tr, nil }
func (p *fakePlatform) openDisk(path string) (*blockDev, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &blockDev{f: f, path: path, size: fi.Size(), align: 4096}, nil
}

func (p *fakePlatform) keepDirtySetOnly(_ Tracker, path string, on bool) error {
	p.dirtySet[path] = on
	return nil
}
func (p *fakePlatform) kernelRelease() string { return "test" }
func (p *fakePlatform) bootID() string        { return "boot" }

// fakeFreezer pretends to freeze one filesystem.
type fakeFreezer struct {
	trace     *trace
	freezeErr error
	// onFreeze runs while "frozen" (a test hook).
	onFreeze func()
}

func (z *fakeFreezer) filesystems([]string) ([]string, error) { return []string{"/fake"}, nil }
func (z *fakeFreezer) syncFS([]string)                        {}
func (z *fakeFreezer) freeze(mnts []string) (func() error, error) {
	if z.freezeErr != nil {
		z.trace.add("freeze failed")
		return nil, z.freezeErr
	}
	z.trace.add("freeze")
	if z.onFreeze != nil {
		z.onFreeze()
	}
	return func() error { z.trace.add("thaw"); return nil }, nil
}
func (z *fakeFreezer) expediteRCU(warner) func() { return nil }

// fakeServer is a process server that accepts everything.
type fakeServer struct{}

func (fakeServer) PutSegmentFile(context.Context, string, uint64, string) (api.SegmentAck, error) {
	return api.SegmentAck{}, nil
}
func (fakeServer) PutSegment(context.Context, string, uint64, io.Reader, int64) (api.SegmentAck, error) {
	return api.SegmentAck{}, nil
}
func (fakeServer) SetMachine(context.Context, []api.DiskSpec) (api.Machine, error) {
	return api.Machine{}, nil
}
func (fakeServer) DiskState(context.Context, string) (api.DiskState, error) {
	return api.DiskState{NextSeq: 1}, nil
}
func (fakeServer) Hashes(context.Context, string, int64, int64, int64) ([][32]byte, error) {
	return nil, errors.New("no replica in this test")
}
func (fakeServer) Point(context.Context, string) (api.PointStatus, error) {
	return api.PointStatus{}, nil
}

// testAgent is an agent on fakes, with its disks' files.
type testAgent struct {
	*Agent
	tr    *fakeTracker
	fz    *fakeFreezer
	trace *trace
	files []string
}

const testDiskSize = 256 << 10

// newTestAgent returns an agent protecting n disks of testDiskSize bytes
// of random data, its event consumer running (Run is not called: tests
// drive the rounds).
func newTestAgent(t *testing.T, n int) *testAgent {
	t.Helper()
	return newTestAgentWith(t, n, nil)
}

// newTestAgentWith is newTestAgent with its configuration changed by set
// before the agent starts.
func newTestAgentWith(t *testing.T, n int, set func(*Config)) *testAgent {
	t.Helper()
	dir := t.TempDir()
	tr := &trace{}
	ft := newFakeTracker(tr)
	ta := &testAgent{tr: ft, fz: &fakeFreezer{trace: tr}, trace: tr}
	rng := rand.New(rand.NewSource(int64(n)))
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("disk%d", i))
		b := make([]byte, testDiskSize)
		rng.Read(b)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ta.files = append(ta.files, p)
	}
	// These tests read the journal from the spool's files.
	cfg := Config{Machine: "m1", Disks: ta.files, StateDir: filepath.Join(dir, "state"), Client: fakeServer{}, SpoolBytes: 1 << 30,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		platform: &fakePlatform{tr: ft, dirtySet: map[string]bool{}}, freezer: ta.fz}
	if set != nil {
		set(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ta.Agent = a
	a.consumerWG.Add(1)
	go a.consume()
	t.Cleanup(func() {
		if err := a.stop(); err != nil {
			t.Error(err)
		}
	})
	return ta
}

// rewrite writes new random bytes to [off, off+n) of disk i and reports
// the write to the tracker as queued at queued (0: now).
func (ta *testAgent) rewrite(t *testing.T, i int, off, n, queued int64) {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(time.Now().UnixNano())).Read(b)
	f, err := os.OpenFile(ta.files[i], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if queued == 0 {
		queued = monotonicNow()
	}
	ta.tr.write(ta.files[i], off, n, queued)
}

func (ta *testAgent) round(t *testing.T) bool {
	t.Helper()
	backlog, err := ta.Agent.round(context.Background(), 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return backlog
}

// journal returns the records of disk i's journal so far, in order.
func (ta *testAgent) journal(t *testing.T, i int) []hrlfmt.Record {
	t.Helper()
	d := ta.disks[i]
	if err := d.w.Rotate(); err != nil {
		t.Fatal(err)
	}
	return spoolRecords(t, d.spoolDir)
}

// spoolRecords returns the records of the segments in a spool directory,
// in journal order.
func spoolRecords(t *testing.T, dir string) []hrlfmt.Record {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.hrl"))
	sort.Strings(paths)
	var out []hrlfmt.Record
	for _, p := range paths {
		r, err := hrlfmt.OpenSegment(p)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
		r.Close()
	}
	return out
}

// imageAt rebuilds a disk from its journal up to the CUT of gen, as a
// replica would for that point; false if there is no such CUT.
func imageAt(recs []hrlfmt.Record, size int64, gen uint64) ([]byte, bool) {
	img := make([]byte, size)
	for _, r := range recs {
		switch r.Type {
		case hrlfmt.RecData:
			copy(img[r.Offset:], r.Data)
		case hrlfmt.RecZero:
			clear(img[r.Offset : r.Offset+r.Length])
		case hrlfmt.RecCut:
			if r.Gen == gen {
				return img, true
			}
		}
	}
	return nil, false
}

// readsOf returns the [offset, length) of the DATA and ZERO records of
// recs (what the rounds read and journaled).
func readsOf(recs []hrlfmt.Record) [][2]int64 {
	var out [][2]int64
	for _, r := range recs {
		if r.Type == hrlfmt.RecData || r.Type == hrlfmt.RecZero {
			out = append(out, [2]int64{r.Offset, r.Length})
		}
	}
	return out
}

func cuts(recs []hrlfmt.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		if r.Type == hrlfmt.RecCut {
			out = append(out, r.Gen)
		}
	}
	return out
}

func fileContent(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameImage(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: the journal's image differs from the disk at byte %d", what, i)
	}
}
