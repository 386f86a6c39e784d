package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// conflictServer holds another segment 0 of every disk, and 5 segments.
type conflictServer struct{ fakeServer }

func (conflictServer) PutSegmentFile(_ context.Context, _ string, seq uint64, _ string) (api.SegmentAck, error) {
	return api.SegmentAck{}, &api.StatusError{Status: http.StatusConflict, Code: api.CodeSegmentConflict,
		Message: "segment conflicts with the one accepted", Remedy: "resync"}
}

// PutSegment is the path without a spool (segments from memory).
func (c conflictServer) PutSegment(ctx context.Context, disk string, seq uint64, _ io.Reader, _ int64) (api.SegmentAck, error) {
	return c.PutSegmentFile(ctx, disk, seq, "")
}

func (conflictServer) DiskState(context.Context, string) (api.DiskState, error) {
	return api.DiskState{NextSeq: 5, Applied: true, AppliedSeq: 4}, nil
}

// A segment the server refuses as a conflict makes the agent drop its
// spool, continue after the server's segments and resync the disk, with
// a problem naming the segment (issue 18, item 1).
func TestConflictResyncsTheDisk(t *testing.T) {
	// The test reads the spool to see where the journal continues.
	a, d := startRefusedAgent(t, conflictServer{}, 1<<30, true)
	first := d.nextSeq // where the new state directory continues: the server's 5
	sendSegment(t, d, 1)
	seq, ok := d.up.Diverged()
	if !ok || seq != first {
		t.Fatalf("Diverged() = %d, %v; want %d, true", seq, ok, first)
	}
	if d.up.Status().NextSeq == first+1 {
		t.Fatal("the conflicting segment counts as acknowledged")
	}
	if err := a.checkDivergence(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.up.Diverged(); ok {
		t.Error("still diverged after the resync began")
	}
	if d.state != StateResync || d.nextSeq != 5 || a.rounds.Pending(d.name) != d.size {
		t.Errorf("state %s, next %d, pending %d; want a resync of the whole disk from segment 5", d.state, d.nextSeq, a.rounds.Pending(d.name))
	}
	if paths, _ := filepath.Glob(filepath.Join(d.spoolDir, "*.hrl")); len(paths) != 0 {
		t.Errorf("spool after the divergence: %v", paths)
	}
	writeSegment(t, d, 2)
	if _, err := os.Stat(filepath.Join(d.spoolDir, hrlfmt.SegmentName(5))); err != nil {
		t.Errorf("the journal does not continue at the server's next segment: %v", err)
	}
	st := a.Status()
	found := false
	for _, p := range st.Problems {
		if p.Code == ProblemDiverged && strings.Contains(p.What, "segment "+itoa(first)) && p.Remedy != "" {
			found = true
		}
	}
	if !found || st.Healthy {
		t.Errorf("status %+v: want a %q problem naming segment %d", st.Problems, ProblemDiverged, first)
	}
}

// gapServer acknowledged segments up to 4 and lost 3 and 4 (a forced
// move, a restored server): it waits for 3, which the agent no longer has.
type gapServer struct{ fakeServer }

func (gapServer) PutSegment(context.Context, string, uint64, io.Reader, int64) (api.SegmentAck, error) {
	exp := uint64(3)
	return api.SegmentAck{}, &api.StatusError{Status: http.StatusConflict, Message: "segment out of sequence", Expected: &exp}
}

func (gapServer) DiskState(context.Context, string) (api.DiskState, error) {
	return api.DiskState{NextSeq: 3, Applied: true, AppliedSeq: 2}, nil
}

// A server that waits for a segment the agent no longer has is a
// divergence too: the agent resyncs the disk from the server's next
// segment instead of retrying for ever, and says it was a gap.
func TestGapResyncsTheDisk(t *testing.T) {
	a, d := startRefusedAgent(t, gapServer{}, 0, false)
	d.nextSeq = 5
	if err := d.up.Reset(5); err != nil { // the agent was at 5 when the server lost 3 and 4
		t.Fatal(err)
	}
	if err := a.newWriter(d); err != nil {
		t.Fatal(err)
	}
	sendSegment(t, d, 1)
	if seq, ok := d.up.Diverged(); !ok || seq != 5 {
		t.Fatalf("Diverged() = %d, %v; want 5, true: a gap the agent cannot fill is retried for ever", seq, ok)
	}
	if err := a.checkDivergence(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.state != StateResync || d.nextSeq != 3 || a.rounds.Pending(d.name) != d.size {
		t.Errorf("state %s, next %d, pending %d; want a resync of the whole disk from segment 3", d.state, d.nextSeq, a.rounds.Pending(d.name))
	}
	found := false
	for _, p := range a.Status().Problems {
		if p.Code == ProblemDiverged && strings.Contains(p.What, "waits for segment 3") {
			found = true
		}
	}
	if !found {
		t.Errorf("problems %+v: want a %q problem saying the server waits for segment 3", a.Status().Problems, ProblemDiverged)
	}
}

// startRefusedAgent returns an agent of one zeroed disk whose segments go
// to srv, a server that refuses them, spooled on disk up to spoolBytes (0:
// sent from memory), and its disk; its event consumer runs and the test
// drives the uploader (sendSegment). The agent stops when the test ends:
// stop's error fails the test if stopClean (a segment the server refused
// and that no resync replaced is reported by stop as not sent).
func startRefusedAgent(t *testing.T, srv Server, spoolBytes int64, stopClean bool) (*Agent, *disk) {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "sda")
	if err := os.WriteFile(disk, make([]byte, testDiskSize), 0o600); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTracker(&trace{})
	a, err := New(Config{Machine: "m1", Disks: []string{disk}, StateDir: filepath.Join(dir, "state"), Client: srv,
		SpoolBytes: spoolBytes,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		platform:   &fakePlatform{tr: ft, dirtySet: map[string]bool{}}, freezer: &fakeFreezer{trace: &trace{}}})
	if err != nil {
		t.Fatal(err)
	}
	a.consumerWG.Add(1)
	go a.consume()
	t.Cleanup(func() {
		if err := a.stop(); err != nil && stopClean {
			t.Error(err)
		}
	})
	return a, a.disks[0]
}

// writeSegment writes a block of generation gen to d's journal and closes
// the segment.
func writeSegment(t *testing.T, d *disk, gen uint64) {
	t.Helper()
	if err := d.w.WriteData(0, gen, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := d.w.Rotate(); err != nil {
		t.Fatal(err)
	}
}

// sendSegment writes a segment (writeSegment) and lets d's uploader send
// it to the server for 500 ms.
func sendSegment(t *testing.T, d *disk, gen uint64) {
	t.Helper()
	writeSegment(t, d, gen)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	d.up.Run(ctx)
}
