package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// Sender sends one sealed segment, from a file of the spool or from
// memory; *client.Process implements it.
type Sender interface {
	PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error)
	PutSegment(ctx context.Context, disk string, seq uint64, body io.Reader, size int64) (api.SegmentAck, error)
}

// segment is a sealed segment waiting for its acknowledgement: a file of
// the spool (path), or the bytes of a segment built in memory (data).
type segment struct {
	path string
	data []byte
}

func (s segment) size() int64 {
	if s.data != nil {
		return int64(len(s.data))
	}
	if fi, err := os.Stat(s.path); err == nil {
		return fi.Size()
	}
	return 0
}

// Uploader sends the sealed segments of one disk's spool directory.
type Uploader struct {
	client Sender
	disk   string
	dir    string
	log    *slog.Logger

	mu        sync.Mutex
	sealed    map[uint64]segment // waiting for upload, by seq
	bytes     int64              // bytes of sealed segments not yet acked
	acked     uint64             // highest acked seq + 1 (0: none)
	lastErr   error
	lastOK    time.Time
	errSince  time.Time
	connected bool
	// diverged is the segment the server refused as a conflict
	// (api.ErrSegmentConflict), or the first one it cannot take because
	// it waits for an earlier one this agent no longer has (a gap), until
	// Reset; gapAt is then the segment the server expects.
	diverged  *uint64
	gapAt     *uint64
	waitSince time.Time     // when the oldest segment still queued began waiting for its ack
	wake      chan struct{} // a new segment: wakes an idle uploader only
	kick      chan struct{} // Kick: ends a backoff too
	idle      *sync.Cond
	// release, if set, gets back the memory of an acknowledged memory
	// segment (SetRelease).
	release func([]byte)
	// limiter bounds the rate of the bodies sent (SetLimiter); nil: none.
	// lastLimited is the last time an upload waited for it while other
	// segments queued behind, limitedSince when that run began.
	limiter                   *Limiter
	lastLimited, limitedSince time.Time
	lastWait                  time.Time // an upload last waited for the limit
	// window is how many segments are sent at once (SetWindow);
	// inflight the ones being sent, cancelSends ends them (a failure, a
	// Reset), resetting holds new sends back while a Reset waits for
	// them to end.
	window      int
	inflight    map[uint64]bool
	cancelSends context.CancelFunc
	resetting   bool
}

// DefaultWindow is how many segments of a disk the uploader sends at once
// unless SetWindow says otherwise: the server receives and verifies the
// next ones while it makes one durable, so the round trip of each
// acknowledgement does not pace the stream (server/process/pipeline.go).
const DefaultWindow = 4

// SetWindow sets how many segments are sent at once (1: one at a time,
// each after the one before is acknowledged); call it before Run.
func (u *Uploader) SetWindow(n int) {
	u.window = min(max(n, 1), api.MaxSegmentsAhead)
}

// New returns an uploader of the spool directory dir of a disk. Segments
// already sealed in dir (complete with a trailer) are queued at once.
func New(c Sender, disk, dir string, log *slog.Logger) (*Uploader, error) {
	u := &Uploader{client: c, disk: disk, dir: dir, log: log, sealed: map[uint64]segment{},
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), window: DefaultWindow, inflight: map[uint64]bool{}}
	u.idle = sync.NewCond(&u.mu)
	if dir == "" {
		return u, nil // no spool: segments come from memory only
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	for _, e := range ents {
		seq, ok := hrlfmt.ParseSegmentName(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if s, err := hrlfmt.VerifySegment(path); err != nil || !s.Complete {
			continue // the open segment of a crashed writer: Recover seals it first
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		u.sealed[seq] = segment{path: path}
		u.bytes += fi.Size()
	}
	if len(u.sealed) > 0 {
		u.waitSince = time.Now()
	}
	return u, nil
}

// SetLimiter makes the uploads draw from l, the agent's bandwidth limit
// shared by its disks; call it before Run.
func (u *Uploader) SetLimiter(l *Limiter) { u.limiter = l }

// limitedQuiet: a disk counts as held up by the bandwidth limit until its
// uploads have not waited for it for this long.
const limitedQuiet = 5 * time.Second

// noteWait records that an upload waited d for the bandwidth limit.
func (u *Uploader) noteWait(d time.Duration) {
	if d < time.Millisecond {
		return
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lastWait = now
	if len(u.sealed) < 2 {
		return // nothing queues behind this segment: no lag from the limit
	}
	if u.limitedSince.IsZero() || now.Sub(u.lastLimited) > limitedQuiet {
		u.limitedSince = now
	}
	u.lastLimited = now
}

// Throttled reports whether an upload waited for the bandwidth limit
// within the last few seconds: a slow acknowledgement then comes from the
// limit, not from a stalled server.
func (u *Uploader) Throttled() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.lastWait.IsZero() && time.Since(u.lastWait) <= limitedQuiet
}

// SetRelease sets where the memory of an acknowledged memory segment goes
// (to be reused for a later segment); call it before Run.
func (u *Uploader) SetRelease(f func([]byte)) { u.release = f }

// SealedMemory hands over a segment built in memory (the journal writer's
// OnSealed, in sequence order): the uploader owns seg until it is
// acknowledged, then gives it to the release function.
func (u *Uploader) SealedMemory(seq uint64, seg []byte) {
	u.queue(seq, segment{data: seg})
}

// Sealed hands over a segment the writer has closed; call it in sequence
// order (the journal writer's OnRotate).
func (u *Uploader) Sealed(seq uint64, path string) {
	u.queue(seq, segment{path: path})
}

func (u *Uploader) queue(seq uint64, s segment) {
	n := s.size()
	u.mu.Lock()
	if len(u.sealed) == 0 {
		u.waitSince = time.Now()
	}
	u.sealed[seq] = s
	u.bytes += n
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Kick makes the uploader try again now, also during a backoff (the
// agent calls it when its process server changed).
func (u *Uploader) Kick() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Status is the state of the uploads of one disk, as the agent's local
// API shows it.
type Status = api.SpoolStatus

// Status returns the uploader's state.
func (u *Uploader) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := Status{Queued: len(u.sealed), Bytes: u.bytes, NextSeq: u.acked, Connected: u.connected, LastOK: u.lastOK, ErrorSince: u.errSince}
	if !u.lastLimited.IsZero() && time.Since(u.lastLimited) <= limitedQuiet && len(u.sealed) > 0 {
		s.BandwidthLimited, s.BandwidthLimitedSince = true, u.limitedSince
	}
	if u.lastErr != nil {
		s.LastError = u.lastErr.Error()
		s.Refused = refusal(u.lastErr)
	}
	return s
}

// WaitingSince returns since when the oldest segment still queued has
// waited for its acknowledgement (the later of its sealing and the last
// acknowledgement), zero when nothing is queued. A hung process server
// shows here while no request has failed yet.
func (u *Uploader) WaitingSince() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.sealed) == 0 {
		return time.Time{}
	}
	return u.waitSince
}

// Reasons of Status.Refused.
const (
	RefusedRetired   = api.SpoolRefusedRetired   // api.ErrRetired: protection ended
	RefusedMoved     = api.SpoolRefusedMoved     // api.ErrMisdirected, api.ErrMoving
	RefusedGap       = api.SpoolRefusedGap       // api.ErrSequenceGap: resync needed
	RefusedCacheFull = api.SpoolRefusedCacheFull // api.ErrCacheFull
	RefusedConflict  = api.SpoolRefusedConflict  // api.ErrSegmentConflict: divergence
)

func refusal(err error) string {
	switch {
	case errors.Is(err, api.ErrSegmentConflict):
		return RefusedConflict
	case errors.Is(err, api.ErrRetired):
		return RefusedRetired
	case errors.Is(err, api.ErrMisdirected), errors.Is(err, api.ErrMoving):
		return RefusedMoved
	case errors.Is(err, api.ErrSequenceGap):
		return RefusedGap
	case errors.Is(err, api.ErrCacheFull):
		return RefusedCacheFull
	}
	return ""
}

// WaitIdle returns once every segment sealed so far has been acknowledged.
func (u *Uploader) WaitIdle(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		u.mu.Lock()
		for len(u.sealed) > 0 && ctx.Err() == nil {
			u.idle.Wait()
		}
		u.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return ctx.Err()
	case <-ctx.Done():
		u.mu.Lock()
		u.idle.Broadcast()
		u.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Backoff bounds of the retries after a failed upload: the delay doubles
// from MinBackoff up to MaxBackoff and only a success (or Kick) resets it;
// new segments never shorten it.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// Run uploads until ctx ends: up to the window's segments at once, the
// lowest first, each acknowledged on its own. A failure ends the other
// sends under way (the server would make them wait for the failed one)
// and, after a backoff, the uploads start again from the lowest segment
// not acknowledged.
func (u *Uploader) Run(ctx context.Context) {
	backoff := MinBackoff
	results := make(chan sendResult, api.MaxSegmentsAhead)
	running := 0
	var failed error // a send failed: nothing new starts until the others ended and the backoff passed
	var failedSeq uint64
	// window: one segment at a time until one is acknowledged, at
	// start and after a failure (a refusing or unreachable server gets
	// one try per backoff, not a window of them); then u.window.
	window := 1
	sctx, cancel := context.WithCancel(ctx)
	u.mu.Lock()
	u.cancelSends = cancel
	u.mu.Unlock()
	defer func() {
		cancel()
		for ; running > 0; running-- {
			<-results
		}
	}()
	for ctx.Err() == nil {
		if failed == nil {
			for running < window {
				seq, seg, base, ok := u.nextToSend()
				if !ok {
					break
				}
				running++
				bctx := api.WithSegmentBase(sctx, base)
				go func() {
					err := u.send(bctx, seq, seg)
					u.mu.Lock()
					delete(u.inflight, seq)
					u.idle.Broadcast() // a Reset waits for the sends to end
					u.mu.Unlock()
					results <- sendResult{seq: seq, err: err}
				}()
			}
		}
		if running == 0 {
			if failed != nil {
				if !u.backoff(ctx, failedSeq, failed, &backoff) {
					return
				}
				failed = nil
				u.mu.Lock()
				sctx, cancel = context.WithCancel(ctx)
				u.cancelSends = cancel
				u.mu.Unlock()
				continue
			}
			select {
			case <-ctx.Done():
			case <-u.wake:
			case <-u.kick:
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
			continue
		case r := <-results:
			running--
			err := r.err
			if failed != nil {
				// After a failure the window stays narrow and the
				// failure shown until the backoff's try succeeds; a
				// send of the ones ended by it may still have been
				// acknowledged (send accounted it).
				if err == nil {
					u.mu.Lock()
					u.lastOK = time.Now()
					u.mu.Unlock()
				}
				continue
			}
			if errors.Is(err, context.Canceled) && ctx.Err() == nil {
				// A Reset ended the sends: not a failure to show.
				failed, failedSeq = err, r.seq
				cancel()
				continue
			}
			u.mu.Lock()
			u.lastErr = err
			u.connected = err == nil || isAPIError(err)
			if err == nil {
				u.lastOK = time.Now()
				u.errSince = time.Time{}
			} else if u.errSince.IsZero() {
				u.errSince = time.Now()
			}
			u.mu.Unlock()
			if err == nil {
				backoff, window = MinBackoff, u.window
				continue
			}
			if ctx.Err() != nil {
				return
			}
			failed, failedSeq, window = err, r.seq, 1
			cancel() // the sends after it would wait for it at the server
		}
	}
}

type sendResult struct {
	seq uint64
	err error
}

// backoff handles a failed upload once no send is under way: it waits
// the backoff (a Kick ends it early) and doubles it. It returns false
// when the uploader must stop.
func (u *Uploader) backoff(ctx context.Context, seq uint64, err error, backoff *time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return true // a Reset ended the sends: go on with what is left
	}
	if errors.Is(err, api.ErrRetired) {
		// Final: nothing more is sent; status shows it.
		u.log.Error("the server no longer accepts this machine's segments", "disk", u.disk, "err", err)
		<-ctx.Done()
		return false
	}
	u.log.Warn("upload failed; retrying", "disk", u.disk, "seq", seq, "err", err, "retry_in", *backoff)
	// Only a Kick (the process server changed) ends the wait early: a
	// new segment must not, or a busy disk retries a refusing server
	// (a full cache) as fast as it seals segments.
	t := time.NewTimer(*backoff)
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-u.kick:
		*backoff = MinBackoff / 2 // the next failure waits MinBackoff again
	}
	t.Stop()
	*backoff = min(2**backoff, MaxBackoff)
	return ctx.Err() == nil
}

// nextToSend returns the lowest segment neither acknowledged nor being
// sent, marked as being sent, and base, the lowest segment not
// acknowledged (api.HeaderSegmentBase).
func (u *Uploader) nextToSend() (seq uint64, seg segment, base uint64, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.resetting || len(u.sealed) == 0 {
		return 0, segment{}, 0, false
	}
	first := true
	for s := range u.sealed {
		if first || s < base {
			base = s
		}
		if !u.inflight[s] && (!ok || s < seq) {
			seq, ok = s, true
		}
		first = false
	}
	if ok {
		u.inflight[seq] = true
		seg = u.sealed[seq]
	}
	return seq, seg, base, ok
}

// sendTimeout bounds one upload; under a bandwidth limit it grows to
// twice the time the limit needs for the segment.
const sendTimeout = 5 * time.Minute

func (u *Uploader) send(ctx context.Context, seq uint64, seg segment) error {
	timeout := sendTimeout
	if u.limiter != nil {
		if lim := u.limiter.Status().Limit; lim > 0 {
			timeout = max(timeout, 2*time.Duration(float64(seg.size())/float64(lim)*float64(time.Second)))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	switch {
	case seg.data != nil:
		_, err = u.client.PutSegment(sctx, u.disk, seq, u.limiter.Reader(sctx, bytes.NewReader(seg.data), u.noteWait), int64(len(seg.data)))
	case u.limiter != nil:
		err = u.sendFileLimited(sctx, seq, seg.path)
	default:
		_, err = u.client.PutSegmentFile(sctx, u.disk, seq, seg.path)
	}
	var ae *api.StatusError
	if errors.Is(err, api.ErrSegmentConflict) {
		// Never a success: the server holds another segment under
		// this number. The agent resyncs the disk (Diverged, Reset).
		u.mu.Lock()
		if _, ok := u.sealed[seq]; ok { // not dropped by a Reset meanwhile
			u.diverged = &seq
		}
		u.mu.Unlock()
		return fmt.Errorf("segment %d: %w", seq, err)
	}
	if errors.Is(err, api.ErrSequenceGap) && errors.As(err, &ae) {
		exp := *ae.Expected
		u.mu.Lock()
		_, held := u.sealed[exp]
		u.mu.Unlock()
		if exp > seq {
			// The server already has it (an ack lost in a disconnect).
			err = nil
		} else if held {
			// Sent ahead of exp, which failed or did not come in time
			// (pipelined): both go again.
			return fmt.Errorf("segment %d: %w", seq, err)
		} else {
			// The server lost segments it had acknowledged (a forced
			// move, a restored server): retrying cannot fill the gap.
			// The agent resyncs the disk from the server's next
			// segment, as after a conflict (Diverged, Reset).
			u.mu.Lock()
			if _, ok := u.sealed[seq]; ok {
				u.diverged, u.gapAt = &seq, &exp
			}
			u.mu.Unlock()
			return fmt.Errorf("segment %d: %w: the server expects %d, which this agent no longer has", seq, err, exp)
		}
	}
	if err != nil {
		return fmt.Errorf("segment %d: %w", seq, err)
	}
	size := seg.size()
	if seg.data == nil {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove acked segment: %w", err)
		}
	}
	u.mu.Lock()
	if _, ok := u.sealed[seq]; !ok {
		// Dropped by a Reset (it waits for the sends to end, so this
		// is a send it raced with): nothing more to account.
		u.mu.Unlock()
		return nil
	}
	delete(u.sealed, seq)
	u.bytes -= size
	u.acked = max(u.acked, seq+1)
	u.waitSince = time.Now()
	// The memory goes back before WaitIdle can return (Reset, too,
	// releases under the lock).
	if seg.data != nil && u.release != nil {
		u.release(seg.data)
	}
	if len(u.sealed) == 0 {
		u.idle.Broadcast()
	}
	u.mu.Unlock()
	return nil
}

// sendFileLimited sends a spool file through the bandwidth limit.
func (u *Uploader) sendFileLimited(ctx context.Context, seq uint64, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = u.client.PutSegment(ctx, u.disk, seq, u.limiter.Reader(ctx, f, u.noteWait), fi.Size())
	return err
}

func isAPIError(err error) bool {
	var ae *api.StatusError
	return errors.As(err, &ae)
}

// Diverged returns the segment the server refused because it holds
// another one under its sequence number (api.ErrSegmentConflict), until
// Reset.
func (u *Uploader) Diverged() (seq uint64, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.diverged == nil {
		return 0, false
	}
	return *u.diverged, true
}

// Gap returns, when Diverged is a gap rather than a conflict, the
// segment the server expects.
func (u *Uploader) Gap() (expected uint64, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gapAt == nil {
		return 0, false
	}
	return *u.gapAt, true
}

// Reset drops every segment of the spool (deleting their files) and
// continues at sequence number next: after a divergence, the agent
// resyncs the disk against the replica instead of sending them.
func (u *Uploader) Reset(next uint64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	// End the sends under way first: none of them may become durable
	// after the server was told where the journal goes on.
	u.resetting = true
	for len(u.inflight) > 0 {
		if u.cancelSends != nil {
			u.cancelSends()
		}
		u.idle.Wait()
	}
	u.resetting = false
	var first error
	for seq, seg := range u.sealed {
		if seg.data != nil {
			if u.release != nil {
				u.release(seg.data)
			}
		} else if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("drop segment %d: %w", seq, err)
		}
		delete(u.sealed, seq)
	}
	u.bytes, u.acked, u.diverged, u.gapAt, u.lastErr = 0, next, nil, nil, nil
	u.idle.Broadcast()
	return first
}
