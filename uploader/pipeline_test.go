package uploader

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// turnServer makes segments durable in order as the process server does
// with pipelined uploads: a segment above next waits (with its context)
// for the ones before it when its base says the agent holds them, and is
// a gap otherwise. It counts the uploads under way at once.
type turnServer struct {
	mu              sync.Mutex
	cond            *sync.Cond
	next            uint64
	acked           []uint64
	active, maxSeen int
	hold            bool // every upload waits until its context ends
}

func newTurnServer() *turnServer {
	s := &turnServer{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *turnServer) PutSegmentFile(ctx context.Context, disk string, seq uint64, _ string) (api.SegmentAck, error) {
	return s.PutSegment(ctx, disk, seq, nil, 0)
}

func (s *turnServer) PutSegment(ctx context.Context, _ string, seq uint64, body io.Reader, _ int64) (api.SegmentAck, error) {
	if body != nil {
		io.Copy(io.Discard, body)
	}
	stop := context.AfterFunc(ctx, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active++
	s.maxSeen = max(s.maxSeen, s.active)
	defer func() { s.active-- }()
	time.Sleep(5 * time.Millisecond) // receiving and verifying it
	base, ok := api.SegmentBase(ctx)
	for seq > s.next || s.hold {
		if !s.hold && (!ok || base > s.next) {
			e := s.next
			return api.SegmentAck{}, &api.StatusError{Status: 409, Message: "out of order", Expected: &e}
		}
		if ctx.Err() != nil {
			return api.SegmentAck{}, ctx.Err()
		}
		s.cond.Wait()
	}
	if seq < s.next {
		return api.SegmentAck{Acked: seq, Duplicate: true}, nil
	}
	s.acked = append(s.acked, seq)
	s.next++
	s.cond.Broadcast()
	return api.SegmentAck{Acked: seq}, nil
}

// memorySegments seals n memory segments of one 4 KiB block each, from
// sequence number first, handing each to u.
func memorySegments(t *testing.T, u *Uploader, first uint64, n int) {
	t.Helper()
	w, err := hrlfmt.NewWriter(hrlfmt.WriterOptions{Memory: true, Machine: "m", Disk: "d", DiskSize: 1 << 20, FirstSeq: first, OnSealed: u.SealedMemory})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.WriteData(int64(i%256)*4096, 1, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPipelinedUploads: the uploader keeps several segments in flight
// once the server acknowledged one, every segment is acknowledged once
// and in order, and none is taken for a divergence.
func TestPipelinedUploads(t *testing.T) {
	s := newTurnServer()
	u, err := New(s, "d", "", quiet())
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	memorySegments(t, u, 0, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go u.Run(ctx)
	if err := u.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acked) != n {
		t.Fatalf("server made %d segments durable, want %d", len(s.acked), n)
	}
	for i, seq := range s.acked {
		if seq != uint64(i) {
			t.Fatalf("durable order %v, want 0..%d", s.acked, n-1)
		}
	}
	if s.maxSeen < 2 || s.maxSeen > DefaultWindow {
		t.Errorf("at most %d uploads at once, want 2..%d (pipelined)", s.maxSeen, DefaultWindow)
	}
	if seq, ok := u.Diverged(); ok {
		t.Errorf("diverged at %d", seq)
	}
	if st := u.Status(); st.NextSeq != n || st.Queued != 0 {
		t.Errorf("status %+v, want next %d and nothing queued", st, n)
	}
}

// TestResetEndsSendsInFlight: a Reset ends the uploads under way before
// it drops the segments, so none of them can become durable after the
// agent was told where the journal goes on; the uploader then goes on
// with the segments queued after the Reset.
func TestResetEndsSendsInFlight(t *testing.T) {
	s := newTurnServer()
	s.next = 0
	u, err := New(s, "d", "", quiet())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	released := 0
	u.SetRelease(func([]byte) { mu.Lock(); released++; mu.Unlock() })
	memorySegments(t, u, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go u.Run(ctx)
	if err := u.WaitIdle(ctx); err != nil { // one acked: the window is open
		t.Fatal(err)
	}
	s.mu.Lock()
	s.hold = true
	s.mu.Unlock()
	memorySegments(t, u, 1, 6)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		active := s.active
		s.mu.Unlock()
		if active >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d uploads under way, want at least 2", active)
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- u.Reset(1) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reset did not return: it must end the sends under way")
	}
	s.mu.Lock()
	active, acked := s.active, len(s.acked)
	s.hold = false
	s.mu.Unlock()
	if active != 0 || acked != 1 {
		t.Fatalf("after Reset: %d uploads under way and %d durable; want 0 and only segment 0", active, acked)
	}
	mu.Lock()
	if released != 7 {
		t.Errorf("%d segments' memory given back, want 7 (1 acked + 6 dropped)", released)
	}
	mu.Unlock()
	memorySegments(t, u, 1, 3)
	if err := u.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := u.Status(); st.NextSeq != 4 || st.LastError != "" {
		t.Errorf("status after the Reset's segments %+v, want next 4 and no error shown", st)
	}
}
