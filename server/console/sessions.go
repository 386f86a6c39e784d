package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// session is a logged-in browser. It is kept in memory under the SHA-256
// of its token, so the token itself is held only by the browser.
type session struct {
	user    string
	csrf    string
	created time.Time
	seen    time.Time
}

// sessions holds the live sessions. Safe for concurrent use.
type sessions struct {
	idle, max time.Duration
	mu        sync.Mutex
	m         map[[32]byte]*session
}

func newSessions(idle, max time.Duration) *sessions {
	return &sessions{idle: idle, max: max, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user; it returns its token.
func (s *sessions) create(user string, now time.Time) (string, *session) {
	tok := randomToken()
	ss := &session{user: user, csrf: randomToken(), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(tok))] = ss
	return tok, ss
}

func (s *sessions) expired(v *session, now time.Time) bool {
	return now.Sub(v.seen) > s.idle || now.Sub(v.created) > s.max
}

// get returns the live session of tok and marks it seen.
func (s *sessions) get(tok string, now time.Time) (session, bool) {
	k := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if s.expired(v, now) {
		delete(s.m, k)
		return session{}, false
	}
	v.seen = now
	return *v, true
}

func (s *sessions) delete(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(tok)))
}

// deleteUser ends every session of user (the account was removed).
func (s *sessions) deleteUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if v.user == user {
			delete(s.m, k)
		}
	}
}

// limiter counts failed logins per key (a client address, an account
// name) in a sliding window and refuses a key that reached its limit.
type limiter struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	fails  map[string][]time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *limiter) recent(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

// blocked reports whether any key is at its limit, and when the oldest
// counted failure leaves the window.
func (l *limiter) blocked(now time.Time, keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if ts := l.recent(k, now); len(ts) >= l.max {
			return l.window - now.Sub(ts[0]), true
		}
	}
	return 0, false
}

// maxKeys bounds the keys a limiter remembers: past it, the keys whose
// failures all left the window are forgotten.
const maxKeys = 10000

func (l *limiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > maxKeys {
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	for _, k := range keys {
		l.fails[k] = append(l.recent(k, now), now)
	}
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
