package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// recordingServer is a process server that keeps the segments it
// acknowledges, checks their order, and can be made unreachable.
type recordingServer struct {
	fakeServer
	mu   sync.Mutex
	down bool
	segs map[string][][]byte // by disk, in sequence order
	next map[string]uint64
}

func newRecordingServer() *recordingServer {
	return &recordingServer{segs: map[string][][]byte{}, next: map[string]uint64{}}
}

func (s *recordingServer) PutSegmentFile(context.Context, string, uint64, string) (api.SegmentAck, error) {
	return api.SegmentAck{}, errors.New("this agent has no spool: no segment file may be sent")
}

func (s *recordingServer) PutSegment(_ context.Context, disk string, seq uint64, body io.Reader, size int64) (api.SegmentAck, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return api.SegmentAck{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return api.SegmentAck{}, errors.New("dial tcp: connection refused")
	}
	if int64(len(b)) != size {
		return api.SegmentAck{}, errors.New("short body")
	}
	next, ok := s.next[disk]
	if !ok {
		next = 1 // DiskState's NextSeq
	}
	if seq != next {
		e := next
		return api.SegmentAck{}, &api.StatusError{Status: 409, Message: "out of order", Expected: &e}
	}
	if _, err := hrlfmt.NewReader(bytes.NewReader(b)); err != nil {
		return api.SegmentAck{}, &api.StatusError{Status: 400, Message: err.Error()}
	}
	s.segs[disk] = append(s.segs[disk], b)
	s.next[disk] = seq + 1
	return api.SegmentAck{Acked: seq}, nil
}

func (s *recordingServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// records returns the records of a disk's acknowledged segments, in order.
func (s *recordingServer) records(t *testing.T, disk string) []hrlfmt.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hrlfmt.Record
	for _, b := range s.segs[disk] {
		r, err := hrlfmt.NewReader(bytes.NewReader(b))
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
	}
	return out
}

const (
	testMemoryBytes  = 64 << 10
	testSegmentBytes = 16 << 10
)

// newStreamingAgent returns a test agent without a spool, its uploaders
// running against srv.
func newStreamingAgent(t *testing.T, srv *recordingServer) *testAgent {
	t.Helper()
	ta := newTestAgentWith(t, 1, func(c *Config) {
		c.Client, c.SpoolBytes, c.MemoryBytes, c.SegmentBytes = srv, 0, testMemoryBytes, testSegmentBytes
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ta.uploading.Store(true)
	for _, d := range ta.disks {
		wg.Add(1)
		go func() { defer wg.Done(); d.up.Run(ctx) }()
	}
	// Runs before newTestAgentWith's cleanup (stop): what is in memory is
	// sent first, so that stop finds nothing left to drain.
	t.Cleanup(func() {
		for _, d := range ta.disks {
			d.w.Rotate()
		}
		if err := ta.drainMemory(); err != nil {
			t.Error(err)
		}
		cancel()
		wg.Wait()
	})
	return ta
}

// settle runs a round and waits until the server acknowledged every
// segment sealed so far.
func (ta *testAgent) settle(t *testing.T) {
	t.Helper()
	ta.round(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range ta.disks {
		if err := d.up.WaitIdle(ctx); err != nil {
			t.Fatalf("segments of %s not acknowledged: %v", d.name, err)
		}
	}
}

// backlog is what waits for the server: sealed segments and the open one.
func (ta *testAgent) backlog() int64 {
	var n int64
	for _, d := range ta.disks {
		n += d.up.Status().Bytes + d.unsealed.Load()
	}
	return n
}

// TestStreamWritesNothingLocally: without a spool, the initial sync and
// the changes after it reach the server as segments streamed from memory,
// a point there rebuilds the disk exactly, no journal file is written
// under the state directory, and the status says the disk is streamed.
func TestStreamWritesNothingLocally(t *testing.T) {
	srv := newRecordingServer()
	ta := newStreamingAgent(t, srv)
	name := ta.disks[0].name
	for i := 0; i < 20 && ta.lastPoint.ID == ""; i++ {
		ta.pointDue = time.Time{}
		ta.settle(t)
		if b := ta.backlog(); b > testMemoryBytes*5/4 {
			t.Fatalf("%d bytes held in memory, bound %d", b, testMemoryBytes)
		}
	}
	if ta.lastPoint.ID == "" {
		t.Fatal("no point after the initial sync")
	}
	ta.rewrite(t, 0, 64<<10, 8<<10, 0)
	ta.rewrite(t, 0, 200<<10, 4<<10, 0)
	changed := ta.gen()
	for i := 0; i < 5 && ta.lastPoint.Gen < changed; i++ {
		ta.pointDue = time.Time{}
		ta.settle(t)
	}
	if ta.lastPoint.Gen < changed {
		t.Fatalf("no point after the changes of generation %d: %+v", changed, ta.lastPoint)
	}
	img, ok := imageAt(srv.records(t, name), testDiskSize, ta.lastPoint.Gen)
	if !ok {
		t.Fatalf("the server has no CUT of point %+v", ta.lastPoint)
	}
	sameImage(t, "point streamed from memory", img, fileContent(t, ta.files[0]))
	filepath.WalkDir(ta.cfg.StateDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".hrl") || e.IsDir() && e.Name() == "spool") {
			t.Errorf("%s written: an agent without a spool writes no journal", p)
		}
		return nil
	})
	st := ta.Status()
	if m := st.Disks[0].Mode; m != api.AgentModeStream {
		t.Errorf("mode %q (%s), want %q", m, st.Disks[0].ModeReason, api.AgentModeStream)
	}
}

// TestMetadataModeAndBack: with the server unreachable, the agent holds
// at most its memory bound of segments, then tracks the changed regions
// only (metadata mode, shown in the status with the cause, the tracker
// told to keep its dirty set) and lists no point; once the server is back
// it reads the regions, goes back to streaming, and its next point
// rebuilds the disk exactly.
func TestMetadataModeAndBack(t *testing.T) {
	srv := newRecordingServer()
	ta := newStreamingAgent(t, srv)
	name := ta.disks[0].name
	for i := 0; i < 20 && ta.lastPoint.ID == ""; i++ {
		ta.pointDue = time.Time{}
		ta.settle(t)
	}
	if ta.lastPoint.ID == "" {
		t.Fatal("no point after the initial sync")
	}
	// The initial sync may have filled the memory itself: let the server
	// take all of it first, so that the metadata mode below is the
	// outage's and not a leftover the next acknowledgement ends.
	for i := 0; i < 20 && (ta.spoolFull || ta.backlog() > 0); i++ {
		ta.settle(t)
	}
	if ta.spoolFull || ta.backlog() > 0 {
		t.Fatalf("the initial sync's backlog never drained (%d bytes, metadata mode %v)", ta.backlog(), ta.spoolFull)
	}
	srv.setDown(true)
	// Changes until the memory is full: rounds may cut points meanwhile
	// (they wait in memory, behind their data).
	off := int64(0)
	churn := func() {
		ta.rewrite(t, 0, off, 16<<10, 0)
		off = (off + 16<<10) % testDiskSize
		ta.pointDue = time.Time{}
		ta.round(t)
		if b := ta.backlog(); b > testMemoryBytes*5/4 {
			t.Fatalf("%d bytes held in memory with the server down, bound %d", b, testMemoryBytes)
		}
	}
	for i := 0; i < 40 && !ta.spoolFull; i++ {
		churn()
	}
	if !ta.spoolFull {
		t.Fatalf("memory never full with the server down (backlog %d)", ta.backlog())
	}
	// In metadata mode: more changes, no point.
	before := ta.lastPoint
	for range 8 {
		churn()
	}
	time.Sleep(200 * time.Millisecond) // an upload attempt has failed
	ta.pointDue = time.Time{}
	ta.round(t)
	st := ta.Status()
	d := st.Disks[0]
	if d.Mode != api.AgentModeMetadata || !strings.Contains(d.ModeReason, "connection refused") {
		t.Errorf("mode %q (%s), want %q naming the server's error", d.Mode, d.ModeReason, api.AgentModeMetadata)
	}
	if !slices.ContainsFunc(st.Problems, func(p Problem) bool { return p.Code == ProblemMetadataMode && p.Remedy != "" }) {
		t.Errorf("problems %+v: no %s with a remedy", st.Problems, ProblemMetadataMode)
	}
	if d.PendingBytes == 0 {
		t.Error("nothing pending in metadata mode")
	}
	if !ta.Agent.sys.(*fakePlatform).dirtySet[ta.files[0]] {
		t.Error("the tracker was not told to keep only its dirty set")
	}
	if ta.lastPoint != before {
		t.Fatalf("point %+v cut while changes were only tracked", ta.lastPoint)
	}

	srv.setDown(false)
	for _, dd := range ta.disks {
		dd.up.Kick()
	}
	changed := ta.gen()
	for i := 0; i < 40 && ta.lastPoint.Gen < changed; i++ {
		ta.pointDue = time.Time{}
		ta.settle(t)
		if b := ta.backlog(); b > testMemoryBytes*5/4 {
			t.Fatalf("%d bytes held in memory while catching up, bound %d", b, testMemoryBytes)
		}
	}
	if ta.lastPoint.Gen < changed {
		t.Fatalf("no point after the server came back (pending %d)", ta.Status().Disks[0].PendingBytes)
	}
	if m := ta.Status().Disks[0].Mode; m != api.AgentModeStream {
		t.Errorf("mode %q after catching up, want %q", m, api.AgentModeStream)
	}
	if ta.Agent.sys.(*fakePlatform).dirtySet[ta.files[0]] {
		t.Error("the tracker still keeps only its dirty set")
	}
	img, ok := imageAt(srv.records(t, name), testDiskSize, ta.lastPoint.Gen)
	if !ok {
		t.Fatalf("the server has no CUT of point %+v", ta.lastPoint)
	}
	sameImage(t, "point after metadata mode", img, fileContent(t, ta.files[0]))
}

// gen is the fake tracker's current generation: the changes written now
// are in a point of this generation or later.
func (ta *testAgent) gen() uint64 {
	ta.tr.mu.Lock()
	defer ta.tr.mu.Unlock()
	return ta.tr.gen
}

// TestPointWaitsForBacklog: a point asked for while more is pending than
// rounds read (here 8 rounds' worth, MaxRounds 2) is not failed as "did
// not converge": the rounds read the backlog and the point is cut once
// one has read everything, holding every change.
func TestPointWaitsForBacklog(t *testing.T) {
	ta := newTestAgentWith(t, 1, func(c *Config) { c.RoundBytes, c.MaxRounds = 16<<10, 2 })
	for i := 0; i < 40 && ta.lastPoint.ID == ""; i++ {
		ta.pointDue = time.Time{}
		ta.round(t)
	}
	ta.rewrite(t, 0, 0, 128<<10, 0)
	changed := ta.gen()
	req := &pointRequest{at: time.Now(), resp: make(chan pointResult, 1)}
	ta.waiting = append(ta.waiting, req)
	var r pointResult
	answered := false
	for i := 0; i < 20 && !answered; i++ {
		ta.round(t)
		select {
		case r = <-req.resp:
			answered = true
		default:
		}
	}
	if !answered {
		t.Fatalf("point not answered after 20 rounds (pending %d)", ta.Status().Disks[0].PendingBytes)
	}
	if r.err != nil {
		t.Fatalf("point failed: %v", r.err)
	}
	if r.p.Gen < changed {
		t.Fatalf("point %+v before the changes of generation %d", r.p, changed)
	}
	img, ok := imageAt(ta.journal(t, 0), testDiskSize, r.p.Gen)
	if !ok {
		t.Fatalf("no CUT of generation %d", r.p.Gen)
	}
	sameImage(t, "point after the backlog", img, fileContent(t, ta.files[0]))
}

// TestStreamOrderlyStop: an agent without a spool stopped in order sends
// what it holds in memory before it ends, so its stop is clean (the next
// start continues without a resync) and the server has every segment.
func TestStreamOrderlyStop(t *testing.T) {
	srv := newRecordingServer()
	dir := t.TempDir()
	path := filepath.Join(dir, "disk0")
	b := make([]byte, testDiskSize)
	rand.New(rand.NewSource(5)).Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTracker(&trace{})
	a, err := New(Config{Machine: "m1", Disks: []string{path}, StateDir: filepath.Join(dir, "state"), Client: srv,
		MemoryBytes: testMemoryBytes, SegmentBytes: testSegmentBytes, SegmentAge: 50 * time.Millisecond,
		PointInterval: time.Second, RoundInterval: 10 * time.Millisecond,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		platform: &fakePlatform{tr: ft, dirtySet: map[string]bool{}}, freezer: &fakeFreezer{trace: &trace{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for a.Status().LastPoint == nil {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no point within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everything sent so far acknowledged: on a loaded machine the initial
	// sync's segments can still fill the memory backlog, and the change
	// would then wait as a changed region (metadata mode), not in memory.
	for a.Status().Disks[0].Spool.Queued > 0 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("segments still queued after 10 s: %+v", a.Status().Disks[0].Spool)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A change read while the server is down: its segment waits in memory.
	srv.setDown(true)
	journaled := a.Status().Disks[0].SentBytes
	rand.New(rand.NewSource(6)).Read(b[8192:16384])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ft.write(path, 8192, 8192, monotonicNow())
	// The change's 8 KiB journaled (the segments of points alone can
	// reach 8 KiB in memory before the change's event is even taken, on a
	// loaded machine) and in memory, nothing pending.
	for st := a.Status().Disks[0]; st.SentBytes < journaled+8192 || st.Spool.Bytes < 8192 || st.PendingBytes > 0; st = a.Status().Disks[0] {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the change is not in a segment in memory within 10 s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.setDown(false)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st, err := loadState(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Clean {
		t.Fatal("stop not clean: the segments in memory were not sent before the end")
	}
	recs := srv.records(t, "disk0")
	img := make([]byte, testDiskSize) // every record (random data: no ZERO)
	for _, r := range recs {
		if r.Type == hrlfmt.RecData {
			copy(img[r.Offset:], r.Data)
		}
	}
	sameImage(t, "the server's journal after the stop", img, b)
}
