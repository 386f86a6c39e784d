package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// An agent killed with an upload in flight restarts and asks where the
// journal stands. The dead process's upload, still on its way, must not
// become durable after that answer: the new process's own segment under
// that number would then be a conflict and a resync of the whole disk
// (what a kill -9 of the agent right after it sealed a segment risks).
// The answer fences the disk: the old process's upload is refused as
// superseded, the new one's segment is accepted, no conflict.
func TestRestartedAgentFencesDeadUpload(t *testing.T) {
	s, a, ctx, build := fenceRig(t)
	dead, err := os.ReadFile(build(0, 'D'))
	if err != nil {
		t.Fatal(err)
	}
	// The old process's segment 0, all but its last byte sent.
	pr, pw := io.Pipe()
	defer pw.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := a.Process.PutSegment(ctx, "sda", 0, pr, int64(len(dead)))
		sent <- err
	}()
	if _, err := pw.Write(dead[:len(dead)-1]); err != nil {
		t.Fatal(err)
	}

	// The new process (another client: another session) asks where the
	// journal stands, then the old upload completes.
	p, err := client.NewProcess(s.ProcessAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	st, err := p.DiskState(ctx, "sda")
	if err != nil || st.NextSeq != 0 {
		t.Fatalf("disk state: %+v, %v; want next 0", st, err)
	}
	pw.Write(dead[len(dead)-1:])
	pw.Close()
	if err := <-sent; !errors.Is(err, api.ErrSuperseded) {
		t.Fatalf("the superseded process's upload: %v; want it refused as superseded", err)
	}

	// The new process's segment 0 is accepted, not a conflict; the old
	// process is refused from then on, also for a duplicate.
	own := build(0, 'N')
	if ack, err := p.PutSegmentFile(ctx, "sda", 0, own); err != nil || ack.Duplicate {
		t.Fatalf("the new process's segment 0: %+v, %v; want it accepted", ack, err)
	}
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 0, own); !errors.Is(err, api.ErrSuperseded) {
		t.Errorf("the old process again: %v; want superseded", err)
	}
	if st, err := p.DiskState(ctx, "sda"); err != nil || st.NextSeq != 1 {
		t.Errorf("disk state: %+v, %v; want next 1", st, err)
	}
}

// TestUnaskedSessionIsNotFenced: an agent restarted while the server was
// unreachable resumes from its own spool without asking where the journal
// stands; its uploads are the live ones and pass, although an earlier
// process asked. Once it asks, the earlier process is refused.
func TestUnaskedSessionIsNotFenced(t *testing.T) {
	s, a, ctx, build := fenceRig(t)
	// The first process asks, then sends segment 0.
	if st, err := a.Process.DiskState(ctx, "sda"); err != nil || st.NextSeq != 0 {
		t.Fatalf("disk state: %+v, %v; want next 0", st, err)
	}
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 0, build(0, 'A')); err != nil {
		t.Fatal(err)
	}
	// The next process sends segment 1 from its spool without asking.
	p, err := client.NewProcess(s.ProcessAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	if ack, err := p.PutSegmentFile(ctx, "sda", 1, build(1, 'B')); err != nil || ack.Duplicate {
		t.Fatalf("the unasked process's segment 1: %+v, %v; want it accepted", ack, err)
	}
	// It asks: the first process is refused from then on.
	if st, err := p.DiskState(ctx, "sda"); err != nil || st.NextSeq != 2 {
		t.Fatalf("disk state: %+v, %v; want next 2", st, err)
	}
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 2, build(2, 'A')); !errors.Is(err, api.ErrSuperseded) {
		t.Errorf("the first process after the second asked: %v; want superseded", err)
	}
	if ack, err := p.PutSegmentFile(ctx, "sda", 2, build(2, 'B')); err != nil || ack.Duplicate {
		t.Errorf("the second process's segment 2: %+v, %v; want it accepted", ack, err)
	}
}

// fenceRig starts a server with machine web1 and its 1 MiB disk sda
// declared; build(seq, fill) makes a segment file of sda filled with fill.
func fenceRig(t *testing.T) (*server.Server, *servertest.Agent, context.Context, func(seq uint64, fill byte) string) {
	t.Helper()
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, s, dir, "web1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	build := func(seq uint64, fill byte) string {
		data := make([]byte, 64<<10)
		for i := range data {
			data[i] = fill
		}
		return servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: 1 << 20, Seq: seq, Gen: 1,
			Writes: []servertest.Write{{Off: 0, Data: data}}}.Build(t, t.TempDir())
	}
	return s, a, ctx, build
}
