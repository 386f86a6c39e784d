package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// SessionsFile keeps the live sessions across a restart of the server,
// in the console's directory (mode 0600): each under the SHA-256 of its
// token, never the token itself.
const SessionsFile = "sessions.json"

// seenEvery is how stale a session's last request may be in the file: a
// restart may end a session up to this much earlier than its idle limit.
const seenEvery = time.Minute

// session is a logged-in browser. It is kept under the SHA-256 of its
// token, so the token itself is held only by the browser. Its CSRF token
// is derived from the session token (csrfOf), so it is not stored
// either.
type session struct {
	user    string
	csrf    string
	created time.Time
	seen    time.Time
	saved   time.Time // seen as last written to the file
}

// savedSession is one session in SessionsFile.
type savedSession struct {
	Hash    string    `json:"sha256"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

// sessions holds the live sessions. Safe for concurrent use.
type sessions struct {
	idle, max time.Duration
	path      string // "": in memory only
	log       *slog.Logger
	mu        sync.Mutex
	m         map[[32]byte]*session
}

// newSessions returns the sessions kept in path ("": in memory only),
// with the live ones of a previous run. A file that cannot be read ends
// them all (a warning): everyone logs in again, nothing else is lost.
func newSessions(path string, idle, max time.Duration, log *slog.Logger) *sessions {
	s := &sessions{idle: idle, max: max, path: path, log: log, m: map[[32]byte]*session{}}
	if path == "" {
		return s
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s
	}
	var saved []savedSession
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		log.Warn("console sessions not restored: everyone logs in again", httpapi.LogErr, err, "file", path)
		return s
	}
	now := time.Now()
	for _, v := range saved {
		h, err := hex.DecodeString(v.Hash)
		if err != nil || len(h) != sha256.Size {
			continue
		}
		ss := &session{user: v.User, created: v.Created, seen: v.Seen, saved: v.Seen}
		if !s.expired(ss, now) {
			s.m[[32]byte(h)] = ss
		}
	}
	return s
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// csrfOf is the CSRF token of a session token: only who holds the
// session token (the browser, through its cookie) can learn it.
func csrfOf(tok string) string {
	h := sha256.Sum256([]byte("lifeboat console csrf\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// save writes the live sessions to the file; s.mu is held. A failure is
// logged: the sessions go on in memory.
func (s *sessions) save() {
	if s.path == "" {
		return
	}
	out := make([]savedSession, 0, len(s.m))
	for k, v := range s.m {
		out = append(out, savedSession{Hash: hex.EncodeToString(k[:]), User: v.user, Created: v.created, Seen: v.seen})
		v.saved = v.seen
	}
	b, err := json.Marshal(out)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(s.path), 0o700); err == nil {
			err = fsutil.WriteFileAtomic(s.path, b, 0o600)
		}
	}
	if err != nil {
		s.log.Warn("console sessions not saved: a restart of the server will end them", httpapi.LogErr, err)
	}
}

// create starts a session for user; it returns its token.
func (s *sessions) create(user string, now time.Time) (string, *session) {
	tok := randomToken()
	ss := &session{user: user, csrf: csrfOf(tok), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(tok))] = ss
	s.save()
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
		s.save()
		return session{}, false
	}
	v.seen = now
	if now.Sub(v.saved) >= seenEvery {
		s.save()
	}
	out := *v
	out.csrf = csrfOf(tok)
	return out, true
}

func (s *sessions) delete(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(tok)))
	s.save()
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
	s.save()
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
