package uploader

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Limiter bounds the upload rate of every disk of the agent together: a
// token bucket (golang.org/x/time/rate) that the body of every segment
// upload draws from. The rate in force is, in this order, an override
// set at run time (agentctl bandwidth set), the schedule's window of the
// moment, the agent's own limit; 0 is no limit.
type Limiter struct {
	now func() time.Time

	mu       sync.Mutex
	base     int64
	sched    Schedule
	override *api.AgentBandwidthOverride
	applied  int64 // the rate the bucket has, -1 before the first
	checked  time.Time
	bucket   *rate.Limiter
}

// NewLimiter returns a limiter at base bytes per second (0: none) with a
// schedule (may be empty).
func NewLimiter(base int64, sched Schedule) *Limiter {
	return &Limiter{now: time.Now, base: base, sched: sched, applied: -1, bucket: rate.NewLimiter(rate.Inf, 0)}
}

// SetOverride sets a limit (0: none) that replaces the configured ones
// until until (zero: until ClearOverride or the agent's restart).
func (l *Limiter) SetOverride(limit int64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.override = &api.AgentBandwidthOverride{Limit: limit, Set: l.now(), Until: until}
	l.checked = time.Time{}
}

// ClearOverride returns to the configured limit and schedule.
func (l *Limiter) ClearOverride() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.override = nil
	l.checked = time.Time{}
}

// Status returns the limit in force and where it comes from.
func (l *Limiter) Status() api.AgentBandwidth {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := api.AgentBandwidth{Configured: l.base, Schedule: l.sched.Strings()}
	b.Limit, b.Source, b.Window = l.effectiveLocked(now)
	if l.override != nil {
		o := *l.override
		b.Override = &o
	}
	b.NextChange = l.sched.NextChange(now)
	if o := l.override; o != nil && !o.Until.IsZero() {
		b.NextChange = o.Until
	}
	return b
}

// effectiveLocked returns the limit in force at now.
func (l *Limiter) effectiveLocked(now time.Time) (limit int64, source, window string) {
	if o := l.override; o != nil {
		if o.Until.IsZero() || now.Before(o.Until) {
			return o.Limit, api.BandwidthFromOverride, ""
		}
		l.override = nil // expired
	}
	if w, ok := l.sched.At(now); ok {
		return w.Rate, api.BandwidthFromSchedule, w.String()
	}
	if l.base > 0 {
		return l.base, api.BandwidthFromLimit, ""
	}
	return 0, api.BandwidthNone, ""
}

// refresh gives the bucket the rate in force, checked at most once a
// second (a schedule's windows are whole minutes).
func (l *Limiter) refresh() *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.checked.IsZero() && now.Sub(l.checked) < time.Second && now.After(l.checked) {
		return l.bucket
	}
	l.checked = now
	limit, _, _ := l.effectiveLocked(now)
	if limit == l.applied {
		return l.bucket
	}
	l.applied = limit
	if limit <= 0 {
		l.bucket.SetLimit(rate.Inf)
		return l.bucket
	}
	// A burst of a tenth of a second keeps the rate even over short
	// spans and every wait short (the client's stall watchdog sees a
	// read at least that often).
	l.bucket.SetBurst(burstOf(limit))
	l.bucket.SetLimit(rate.Limit(limit))
	return l.bucket
}

func burstOf(limit int64) int {
	return int(min(max(limit/10, 16<<10), 4<<20))
}

// Reader returns r whose reads draw from the bucket, and calls waited
// with the time each read waited for the limit.
func (l *Limiter) Reader(ctx context.Context, r io.Reader, waited func(time.Duration)) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{ctx: ctx, l: l, r: r, waited: waited}
}

type limitedReader struct {
	ctx    context.Context
	l      *Limiter
	r      io.Reader
	waited func(time.Duration)
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	b := lr.l.refresh()
	if b.Limit() == rate.Inf {
		return lr.r.Read(p)
	}
	if burst := b.Burst(); len(p) > burst {
		p = p[:burst]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		start := time.Now()
		if werr := b.WaitN(lr.ctx, n); werr != nil {
			if errors.Is(werr, context.Canceled) || errors.Is(werr, context.DeadlineExceeded) || lr.ctx.Err() != nil {
				return 0, lr.ctx.Err()
			}
			// The burst changed between the read and the wait (a new
			// limit): wait in pieces.
			for left := n; left > 0; {
				k := min(left, b.Burst())
				if werr := b.WaitN(lr.ctx, k); werr != nil {
					return 0, werr
				}
				left -= k
			}
		}
		if lr.waited != nil {
			lr.waited(time.Since(start))
		}
	}
	return n, err
}
