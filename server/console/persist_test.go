package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestSessionSurvivesRestart: a session goes on with the same CSRF token
// on a new Console of the same data directory (a restarted server); the
// file holds neither its token nor its CSRF token; a logout ends it for
// the next restart too.
func TestSessionSurvivesRestart(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	s, resp := e.login(hc, "olga", pw)
	tok := resp.Cookies()[0].Value
	file, err := os.ReadFile(filepath.Join(e.dir, Dir, SessionsFile))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(tok))
	if !strings.Contains(string(file), hex.EncodeToString(h[:])) || strings.Contains(string(file), tok) || strings.Contains(string(file), s.CSRF) {
		t.Fatalf("sessions file:\n%s", file)
	}
	if fi, _ := os.Stat(filepath.Join(e.dir, Dir, SessionsFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("sessions file mode %v", fi.Mode())
	}
	restart := func() {
		t.Helper()
		e.srv.Close()
		e.c = New(Options{DataDir: e.dir, API: e.api.api(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		e.srv = httptest.NewTLSServer(e.c.Handler())
		t.Cleanup(e.srv.Close)
	}
	restart()
	resp, b := e.do(hc, "GET", "/ui/api/session", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), s.CSRF) || !strings.Contains(string(b), `"olga"`) {
		t.Fatalf("session after a restart: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, testFailover); resp.StatusCode != http.StatusOK {
		t.Fatalf("action after a restart: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.do(hc, "POST", "/ui/api/logout", s.CSRF, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	restart()
	if resp, _ := e.do(hc, "GET", "/ui/api/session", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session after logout and restart: %d", resp.StatusCode)
	}
}

// TestSessionExpiryAcrossRestart: an expired session is not restored, a
// live one is, and an unreadable file ends them all without failing.
func TestSessionExpiryAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), SessionsFile)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newSessions(path, 30*time.Minute, 12*time.Hour, log)
	now := time.Now()
	old, _ := s.create("idle", now.Add(-31*time.Minute))
	long, _ := s.create("long", now.Add(-13*time.Hour))
	live, _ := s.create("live", now)
	s2 := newSessions(path, 30*time.Minute, 12*time.Hour, log)
	for tok, want := range map[string]bool{old: false, long: false, live: true} {
		if _, ok := s2.get(tok, now); ok != want {
			t.Errorf("session restored %v, want %v", ok, want)
		}
	}
	if err := os.WriteFile(path, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s3 := newSessions(path, 30*time.Minute, 12*time.Hour, log); len(s3.m) != 0 {
		t.Fatalf("%d sessions from a torn file", len(s3.m))
	}
}

// TestAuditRotation: the log stays bounded, keeps its rotated files, and
// Last (lifeboat audit, GET /v1/audit) reads across them in order.
func TestAuditRotation(t *testing.T) {
	dir := t.TempDir()
	a := NewAudit(dir)
	a.MaxBytes, a.Keep = 2000, 3
	const n = 100
	for i := range n {
		if err := a.Write(api.AuditEntry{User: "olga", Action: "test-failover", Target: fmt.Sprintf("web%03d", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for i := 0; i <= 3; i++ {
		fi, err := os.Stat(a.rotated(i))
		if err != nil {
			t.Fatalf("rotated file %d: %v", i, err)
		}
		if fi.Size() > a.MaxBytes {
			t.Errorf("%s: %d bytes, bound %d", fi.Name(), fi.Size(), a.MaxBytes)
		}
		total += fi.Size()
	}
	if _, err := os.Stat(a.rotated(4)); !os.IsNotExist(err) {
		t.Fatalf("a fifth file is kept: %v", err)
	}
	all, err := a.Last(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 40 || len(all) >= n {
		t.Fatalf("%d entries kept in %d bytes of 4 files", len(all), total)
	}
	for i, e := range all {
		if want := fmt.Sprintf("web%03d", n-len(all)+i); e.Target != want {
			t.Fatalf("entry %d is %s, want %s: not in order across the rotated files", i, e.Target, want)
		}
	}
	last, err := a.Last(30)
	if err != nil || len(last) != 30 || last[29].Target != "web099" || last[0].Target != "web070" {
		t.Fatalf("newest 30: %d entries %v", len(last), err)
	}
}
