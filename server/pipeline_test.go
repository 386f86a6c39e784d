package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestPipelinedSegmentWaitsItsTurn: an agent sends segment 1 before
// segment 0 is durable (pipelined, api.HeaderSegmentBase 0). The server
// receives it but acknowledges it only once segment 0 is durable, and
// never before: an acknowledgement means every segment up to it is
// durable.
func TestPipelinedSegmentWaitsItsTurn(t *testing.T) {
	_, a, ctx, build := fenceRig(t)
	pctx := api.WithSegmentBase(ctx, 0)

	// Segment 1 first, whole: it must wait.
	one := make(chan error, 1)
	go func() {
		_, err := a.Process.PutSegmentFile(pctx, "sda", 1, build(1, 'B'))
		one <- err
	}()
	select {
	case err := <-one:
		t.Fatalf("segment 1 answered (%v) before segment 0 was sent; want it held until 0 is durable", err)
	case <-time.After(500 * time.Millisecond):
	}
	if st, err := a.Process.DiskState(ctx, "sda"); err != nil || st.NextSeq != 0 {
		t.Fatalf("disk state while 1 waits: %+v, %v; want next 0", st, err)
	}

	// Segment 0, sent slowly: 1 still waits until 0 is whole.
	zero, err := os.ReadFile(build(0, 'A'))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		_, err := a.Process.PutSegment(pctx, "sda", 0, pr, int64(len(zero)))
		sent <- err
	}()
	if _, err := pw.Write(zero[:len(zero)/2]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-one:
		t.Fatalf("segment 1 answered (%v) while segment 0 was half sent", err)
	case <-time.After(300 * time.Millisecond):
	}
	pw.Write(zero[len(zero)/2:])
	pw.Close()
	if err := <-sent; err != nil {
		t.Fatalf("segment 0: %v", err)
	}
	if err := <-one; err != nil {
		t.Fatalf("segment 1 after 0: %v; want it acknowledged", err)
	}
	if st, err := a.Process.DiskState(ctx, "sda"); err != nil || st.NextSeq != 2 {
		t.Fatalf("disk state: %+v, %v; want next 2", st, err)
	}
}

// TestSegmentAheadWithoutBaseIsAGap: a segment above next_seq is a gap,
// answered at once, unless its agent says it holds every segment from
// next_seq on (its base); a base above next_seq (the agent no longer has
// them) is a gap too.
func TestSegmentAheadWithoutBaseIsAGap(t *testing.T) {
	_, a, ctx, build := fenceRig(t)
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"no base", ctx}, {"base above next", api.WithSegmentBase(ctx, 1)}} {
		start := time.Now()
		_, err := a.Process.PutSegmentFile(c.ctx, "sda", 1, build(1, 'B'))
		var se *api.StatusError
		if !errors.Is(err, api.ErrSequenceGap) || !errors.As(err, &se) || se.Expected == nil || *se.Expected != 0 {
			t.Errorf("%s: %v; want a gap expecting 0", c.name, err)
		}
		// Not held for its turn (20 s); the client's wait for "100
		// Continue" may take up to its 5 s.
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: the gap took %s; want it answered without waiting for segment 0", c.name, d)
		}
	}
	// Too far ahead, even with a base.
	far := uint64(api.MaxSegmentsAhead + 1)
	if _, err := a.Process.PutSegmentFile(api.WithSegmentBase(ctx, 0), "sda", far, build(far, 'C')); !errors.Is(err, api.ErrSequenceGap) {
		t.Errorf("segment %d with base 0: %v; want a gap", far, err)
	}
}
