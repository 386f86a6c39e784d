package uploader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// fakeServer acks segments in order and can fail on demand.
type fakeServer struct {
	mu       sync.Mutex
	next     uint64
	got      []uint64
	failNext int     // answer this many calls with a network error
	expected *uint64 // answer 409 with this expected sequence
	gone     bool    // answer 410: the machine was committed
}

func (f *fakeServer) PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := os.Stat(path); err != nil {
		return api.SegmentAck{}, err
	}
	return f.put(seq)
}

func (f *fakeServer) PutSegment(ctx context.Context, disk string, seq uint64, body io.Reader, size int64) (api.SegmentAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := io.ReadAll(body)
	if err != nil || int64(len(b)) != size {
		return api.SegmentAck{}, errors.New("short body")
	}
	if _, err := hrlfmt.NewReader(bytes.NewReader(b)); err != nil {
		return api.SegmentAck{}, err
	}
	return f.put(seq)
}

func (f *fakeServer) put(seq uint64) (api.SegmentAck, error) {
	if f.failNext > 0 {
		f.failNext--
		return api.SegmentAck{}, errors.New("connection reset")
	}
	if f.gone {
		f.got = append(f.got, seq)
		return api.SegmentAck{}, &api.StatusError{Status: 410, Message: "machine committed"}
	}
	if f.expected != nil {
		e := *f.expected
		return api.SegmentAck{}, &api.StatusError{Status: 409, Message: "out of order", Expected: &e}
	}
	if seq != f.next {
		e := f.next
		return api.SegmentAck{}, &api.StatusError{Status: 409, Message: "out of order", Expected: &e}
	}
	f.got = append(f.got, seq)
	f.next++
	return api.SegmentAck{Acked: seq}, nil
}

func writeSegments(t *testing.T, dir string, first uint64, n int, sealed func(uint64, string)) {
	t.Helper()
	w, err := hrlfmt.NewWriter(hrlfmt.WriterOptions{Dir: dir, Machine: "m", Disk: "d", DiskSize: 1 << 20, FirstSeq: first, OnRotate: sealed})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := w.WriteData(int64(i)*4096, 1, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestUploadsInOrderAndDeletesOnlyAcked(t *testing.T) {
	dir := t.TempDir()
	srv := &fakeServer{failNext: 3}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	writeSegments(t, dir, 0, 5, u.Sealed)
	if st := u.Status(); st.Queued != 5 || st.Bytes == 0 {
		t.Fatalf("status before upload = %+v; want 5 queued segments", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := u.WaitIdle(wctx); err != nil {
		t.Fatalf("WaitIdle: %v (status %+v)", err, u.Status())
	}
	srv.mu.Lock()
	got := append([]uint64(nil), srv.got...)
	srv.mu.Unlock()
	for i, s := range got {
		if s != uint64(i) {
			t.Fatalf("server got %v; want 0..4 in order", got)
		}
	}
	if len(got) != 5 {
		t.Fatalf("server got %v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("acked segments left in the spool: %v", ents)
	}
	if st := u.Status(); st.Queued != 0 || st.Bytes != 0 || st.NextSeq != 5 || st.LastError != "" {
		t.Errorf("status after upload = %+v", st)
	}
}

func TestUploaderKeepsSegmentsTheServerDoesNotHave(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 10, 2, nil) // found at start
	exp := uint64(4)                  // the server lost segments 4..9
	srv := &fakeServer{expected: &exp}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if st := u.Status(); st.Queued != 2 {
		t.Fatalf("segments found at start: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	u.Run(ctx)
	st := u.Status()
	if st.Queued != 2 || !errors.Is(u.lastErr, api.ErrSequenceGap) || st.Refused != RefusedGap {
		t.Fatalf("status %+v, last error %v; want both segments kept and a sequence gap", st, u.lastErr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("spool has %d files; nothing may be deleted without an ack", len(ents))
	}
}

func TestUploaderDropsWhatTheServerAlreadyHas(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 0, 3, nil)
	exp := uint64(2) // acks of 0 and 1 were lost in a disconnect
	srv := &fakeServer{expected: &exp}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for u.Status().Queued > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", u.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, hrlfmt.SegmentName(2))); err != nil {
		t.Fatalf("segment 2, which the server does not have, is gone: %v", err)
	}
}

func TestUploaderSkipsOpenSegment(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 0, 1, nil)
	// A segment still being written (no trailer) is not the uploader's.
	w, err := hrlfmt.CreateSegment(filepath.Join(dir, hrlfmt.SegmentName(1)), hrlfmt.Header{Version: hrlfmt.Version, Machine: "m", Disk: "d", DiskSize: 1 << 20, Seq: 1, Created: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	u, err := New(&fakeServer{}, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if st := u.Status(); st.Queued != 1 {
		t.Fatalf("queued %d segments; want only the sealed one", st.Queued)
	}
}

func TestUploaderStopsWhenTheMachineIsRetired(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 0, 2, nil)
	srv := &fakeServer{gone: true}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	u.Run(ctx)
	if len(srv.got) != 1 {
		t.Errorf("sent %d times after a 410; want one try and no retries", len(srv.got))
	}
	if st := u.Status(); st.Queued != 2 || !strings.Contains(st.LastError, "committed") {
		t.Errorf("status %+v; want both segments kept and the reason shown", st)
	}
}

// Segments built in memory are sent in order, retried after a failure,
// counted in the status until acknowledged, and their memory given back.
func TestMemorySegments(t *testing.T) {
	f := &fakeServer{next: 3, failNext: 1}
	u, err := New(f, "d", "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	released := 0
	u.SetRelease(func([]byte) { mu.Lock(); released++; mu.Unlock() })
	memorySegments(t, u, 3, 3)
	if st := u.Status(); st.Queued != 3 || st.Bytes == 0 {
		t.Fatalf("status before upload %+v, want 3 segments queued", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go u.Run(ctx)
	if err := u.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := append([]uint64(nil), f.got...)
	f.mu.Unlock()
	if len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Errorf("server got %v, want [3 4 5]", got)
	}
	if st := u.Status(); st.Queued != 0 || st.Bytes != 0 || st.NextSeq != 6 {
		t.Errorf("status after upload %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if released != 3 {
		t.Errorf("%d segments' memory given back, want 3", released)
	}
}

// refusingServer answers every segment with 507 (a full cache) and keeps
// the time of each call.
type refusingServer struct {
	mu    sync.Mutex
	calls []time.Time
}

func (f *refusingServer) PutSegmentFile(context.Context, string, uint64, string) (api.SegmentAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, time.Now())
	return api.SegmentAck{}, &api.StatusError{Status: 507, Message: "process server cache disk full"}
}

func (f *refusingServer) PutSegment(ctx context.Context, disk string, seq uint64, _ io.Reader, _ int64) (api.SegmentAck, error) {
	return f.PutSegmentFile(ctx, disk, seq, "")
}

// TestBackoffNotResetByNewSegments: a disk that keeps sealing segments
// must not make the uploader retry a refusing server at the pace of its
// segments (issue 18, item 6).
func TestBackoffNotResetByNewSegments(t *testing.T) {
	dir := t.TempDir()
	srv := &refusingServer{}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	// A busy disk: a segment every 50 ms for 3.2 s.
	w, err := hrlfmt.NewWriter(hrlfmt.WriterOptions{Dir: dir, Machine: "m", Disk: "d", DiskSize: 1 << 20, OnRotate: u.Sealed})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3200 * time.Millisecond); time.Now().Before(end); {
		if err := w.WriteData(0, 1, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	w.Close()
	srv.mu.Lock()
	calls := srv.calls
	srv.mu.Unlock()
	// 0, 0.1, 0.3, 0.7, 1.5, 3.1 s: six calls; a reset backoff makes
	// one every 50-100 ms.
	if len(calls) > 8 {
		t.Fatalf("%d uploads in 3.2 s against a full cache: new segments reset the backoff", len(calls))
	}
	for i := 2; i < len(calls); i++ {
		want := MinBackoff << (i - 1)
		if gap := calls[i].Sub(calls[i-1]); gap < want*9/10 {
			t.Errorf("retry %d came %s after the previous one, want at least the backoff %s", i, gap, want)
		}
	}
	if st := u.Status(); st.Refused != RefusedCacheFull {
		t.Errorf("status refused %q, want %q", st.Refused, RefusedCacheFull)
	}
	if u.WaitingSince().IsZero() {
		t.Error("WaitingSince is zero with segments queued")
	}
}

// TestKickEndsBackoff: a changed process server is tried at once.
func TestKickEndsBackoff(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 0, 1, nil)
	srv := &fakeServer{failNext: 5}
	u, err := New(srv, "d", dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go u.Run(ctx)
	// Without kicks, five failures wait 0.1+0.2+0.4+0.8+1.6 s.
	go func() {
		for ctx.Err() == nil {
			u.Kick()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	if err := u.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("kicked uploads took %s: Kick did not end the backoff", el)
	}
}
