package process

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// An agent sends several segments of a disk at once (pipelined; see
// api.HeaderSegmentBase), so that the server receives and verifies one
// while it makes the one before durable, and the round trip of each
// acknowledgement no longer paces the stream. Segments are still made
// durable, acknowledged and applied strictly in sequence order: a segment
// above next_seq is received into a temporary file and verified like any
// other, then waits (waitTurn) until every segment before it is durable;
// only then is it committed. If the one before does not come in time (the
// agent died, or its upload failed and the agent has not sent it again),
// the waiting one is refused as a gap and the agent sends both again.

// turnTimeout bounds how long a received segment waits for the segments
// before it; it stays below the agent's stall timeout (client.StallTimeout),
// so the agent gets the gap answer, not a timeout of its own.
var turnTimeout = 20 * time.Second

// pipelined reports whether an upload of seq, above next, may be received
// now: its agent names a base (the lowest segment it holds) at or below
// next and seq is within api.MaxSegmentsAhead of next.
func pipelined(r *http.Request, seq, next uint64) bool {
	h := r.Header.Get(api.HeaderSegmentBase)
	if h == "" {
		return false
	}
	base, err := strconv.ParseUint(h, 10, 64)
	return err == nil && base <= next && seq > next && seq-next <= api.MaxSegmentsAhead
}

// waitTurn waits until every segment before seq is durable (next >= seq),
// at most turnTimeout or until ctx ends, and otherwise returns the gap
// answer.
func (d *diskState) waitTurn(ctx context.Context, seq uint64) error {
	t := time.NewTimer(turnTimeout)
	defer t.Stop()
	first := true
	var was uint64
	for {
		d.mu.Lock()
		next := d.next
		if d.durable == nil {
			d.durable = make(chan struct{})
		}
		ch := d.durable
		d.mu.Unlock()
		switch {
		case next >= seq:
			return nil
		case !first && next < was:
			// A discard took next back: the segments before seq are
			// gone, the agent must resync rather than wait.
			return gapError(next, fmt.Sprintf("send segment %d first: the segments before %d were discarded", next, seq))
		}
		first, was = false, next
		select {
		case <-ch:
		case <-t.C:
			return gapError(next, fmt.Sprintf("send segment %d first: segment %d waited %v for it", next, seq, turnTimeout))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func gapError(next uint64, remedy string) error {
	return &httpapi.Error{Status: http.StatusConflict, Msg: "out of order", Expected: &next, Remedy: remedy}
}

// madeDurable wakes the uploads that wait for their turn; under mu.
func (d *diskState) madeDurable() {
	if d.durable != nil {
		close(d.durable)
		d.durable = nil
	}
}
