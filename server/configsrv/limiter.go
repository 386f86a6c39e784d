package configsrv

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// Defaults of a Limiter.
const (
	// FreeFailures is how many wrong proofs an address may send before
	// it must wait.
	FreeFailures = 3
	// FirstDelay is the wait after the first failure beyond
	// FreeFailures; each further failure doubles it, up to MaxDelay.
	FirstDelay = time.Second
	MaxDelay   = 10 * time.Minute
	// BurstFailures within BurstWindow from one address raise the
	// registration-burst alert.
	BurstFailures = 20
	BurstWindow   = time.Minute
	// forgetAfter: an address without a failure for this long starts
	// afresh.
	forgetAfter = time.Hour
	// maxSources bounds the addresses remembered; beyond it, those
	// idle longest are forgotten first.
	maxSources = 1 << 16
)

// Limiter slows down guessing of the registration passphrase or a token:
// per source address, after FreeFailures wrong proofs each attempt must
// wait a delay that doubles with every further failure (FirstDelay up to
// MaxDelay); an attempt before then is refused with 429 without checking
// its proof. A registration that succeeds forgets the address. A burst of
// failures calls OnBurst (the alert). Safe for concurrent use.
type Limiter struct {
	// OnBurst, if set, is called when an address reaches BurstFailures
	// failed or refused attempts within BurstWindow (and again each
	// time it does once more). Set it before use.
	OnBurst func(source string, failures int, window time.Duration)
	now     func() time.Time

	mu      sync.Mutex
	sources map[string]*source
}

type source struct {
	failures int       // consecutive, since the last success
	last     time.Time // of the last failure
	window   []time.Time
}

// NewLimiter returns a Limiter with the defaults.
func NewLimiter() *Limiter {
	return &Limiter{now: time.Now, sources: make(map[string]*source)}
}

// Source is the address a request is limited by: its TCP peer's IP.
func Source(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// delay is the wait after n consecutive failures.
func delay(n int) time.Duration {
	if n < FreeFailures {
		return 0
	}
	d := FirstDelay
	for i := FreeFailures; i < n && d < MaxDelay; i++ {
		d *= 2
	}
	return min(d, MaxDelay)
}

// Allow refuses an attempt from src that comes before its delay is over,
// with a 429 answer that says when to retry (also in w's Retry-After). A
// refused attempt counts towards a burst.
func (l *Limiter) Allow(w http.ResponseWriter, src string) error {
	l.mu.Lock()
	s := l.sources[src]
	if s == nil {
		l.mu.Unlock()
		return nil
	}
	now := l.now()
	wait := s.last.Add(delay(s.failures)).Sub(now)
	if wait <= 0 {
		l.mu.Unlock()
		return nil
	}
	burst := l.burst(s, now)
	l.mu.Unlock()
	if burst {
		l.alert(src)
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &httpapi.Error{Status: http.StatusTooManyRequests,
		Msg: fmt.Sprintf("too many failed registrations from %s: retry in %ds", src, secs),
		Remedy: "check the agent's passphrase file (it must hold the line in the server's DATA/passphrase) or its token, then wait before retrying; " +
			"each wrong attempt doubles the wait"}
}

// Failed notes a wrong proof from src.
func (l *Limiter) Failed(src string) {
	now := l.now()
	l.mu.Lock()
	s := l.sources[src]
	if s == nil {
		l.evict(now)
		s = &source{}
		l.sources[src] = s
	}
	s.failures++
	s.last = now
	burst := l.burst(s, now)
	l.mu.Unlock()
	if burst {
		l.alert(src)
	}
}

// burst notes a failed or refused attempt in the window of s and reports
// whether the window reached BurstFailures (it then starts afresh, so
// that the next alert needs a new burst). l.mu must be held.
func (l *Limiter) burst(s *source, now time.Time) bool {
	s.window = append(s.window, now)
	for len(s.window) > 0 && now.Sub(s.window[0]) > BurstWindow {
		s.window = s.window[1:]
	}
	if len(s.window) < BurstFailures {
		return false
	}
	s.window = s.window[:0]
	return true
}

// alert calls OnBurst for src; l.mu must not be held.
func (l *Limiter) alert(src string) {
	if l.OnBurst != nil {
		l.OnBurst(src, BurstFailures, BurstWindow)
	}
}

// Succeeded forgets the failures of src.
func (l *Limiter) Succeeded(src string) {
	l.mu.Lock()
	delete(l.sources, src)
	l.mu.Unlock()
}

// evict forgets addresses idle for forgetAfter, and the longest idle when
// there are still too many. l.mu must be held.
func (l *Limiter) evict(now time.Time) {
	if len(l.sources) < maxSources {
		return
	}
	var oldest string
	for k, s := range l.sources {
		if now.Sub(s.last) > forgetAfter {
			delete(l.sources, k)
			continue
		}
		if oldest == "" || s.last.Before(l.sources[oldest].last) {
			oldest = k
		}
	}
	if len(l.sources) >= maxSources && oldest != "" {
		delete(l.sources, oldest)
	}
}
