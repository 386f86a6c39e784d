package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

func init() { bcryptCost = bcrypt.MinCost }

// fakeAPI stands for the admin API's handlers and notes what they were
// asked.
type fakeAPI struct {
	mu        sync.Mutex
	failovers []api.FailoverRequest
	commits   []string
	groupPts  []string
}

func (f *fakeAPI) api() API {
	return API{
		Machines: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, []api.Machine{{Name: "web1", State: api.StateProtected, Disks: []api.DiskState{}}})
			return nil
		},
		Points: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, []api.Point{{ID: "p1", Kind: "crash", Disks: []string{"sda"}}})
			return nil
		},
		Alerts: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, api.Alerts{})
			return nil
		},
		Failover: func(w http.ResponseWriter, r *http.Request) error {
			var req api.FailoverRequest
			if err := httpapi.DecodeJSON(w, r, 1<<10, &req); err != nil {
				return err
			}
			if r.PathValue("m") != "web1" {
				return httpapi.Errorf(http.StatusNotFound, "unknown machine", "")
			}
			f.mu.Lock()
			f.failovers = append(f.failovers, req)
			f.mu.Unlock()
			httpapi.WriteJSON(w, http.StatusOK, api.FailoverResult{Machine: "web1", Test: req.Test, CheckOK: true})
			return nil
		},
		GroupPoint: func(w http.ResponseWriter, r *http.Request) error {
			f.mu.Lock()
			f.groupPts = append(f.groupPts, r.PathValue("g"))
			f.mu.Unlock()
			httpapi.WriteJSON(w, http.StatusOK, api.GroupPointResult{Group: r.PathValue("g"), OK: true})
			return nil
		},
		DrillRun: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, api.DrillStatus{Machine: r.PathValue("m"),
				LastDrill: &api.BootResult{Machine: r.PathValue("m"), Drill: true, Reason: "the console did not match \"login:\" within 10m0s"}})
			return nil
		},
		Bookmark: func(w http.ResponseWriter, r *http.Request) error {
			var req api.BookmarkRequest
			if err := httpapi.DecodeJSON(w, r, 1<<10, &req); err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.BookmarkResult{Machine: r.PathValue("m"), OK: true, Listed: true,
				Point: &api.AgentPoint{ID: "bm", Kind: map[bool]string{false: "crash", true: "app"}[req.App]}})
			return nil
		},
		Commit: func(w http.ResponseWriter, r *http.Request) error {
			f.mu.Lock()
			f.commits = append(f.commits, r.PathValue("m"))
			f.mu.Unlock()
			httpapi.WriteJSON(w, http.StatusOK, api.Machine{Name: r.PathValue("m")})
			return nil
		},
	}
}

func (f *fakeAPI) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failovers) + len(f.commits) + len(f.groupPts)
}

type env struct {
	t    *testing.T
	dir  string
	c    *Console
	srv  *httptest.Server
	api  *fakeAPI
	logs *bytes.Buffer
}

type syncBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// newEnv serves a console over a real TLS listener.
func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), api: &fakeAPI{}, logs: &bytes.Buffer{}}
	o.DataDir = e.dir
	o.API = e.api.api()
	o.Log = slog.New(slog.NewTextHandler(&syncBuf{b: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.c = New(o)
	e.srv = httptest.NewTLSServer(e.c.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) addUser(name, role string) string {
	e.t.Helper()
	_, pw, err := e.c.users.Add(name, role, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return pw
}

// browser is a client with its own cookie jar.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	hc := e.srv.Client()
	return &http.Client{Transport: hc.Transport, Jar: jar}
}

func (e *env) do(hc *http.Client, method, path, csrf string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set(CSRFHeader, csrf)
	}
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) login(hc *http.Client, name, pw string) (sessionAnswer, *http.Response) {
	e.t.Helper()
	resp, b := e.do(hc, "POST", "/ui/api/login", "", loginRequest{Name: name, Password: pw})
	var s sessionAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &s); err != nil {
			e.t.Fatal(err)
		}
	}
	return s, resp
}

func (e *env) auditResults(action string) []string {
	e.t.Helper()
	es, err := e.c.audit.Last(1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, a := range es {
		if a.Action == action {
			out = append(out, a.User+" "+a.Result)
		}
	}
	return out
}

var testFailover = failoverRequest{FailoverRequest: api.FailoverRequest{Point: "latest", Test: true, Out: "/srv/drill", Check: true}}

func TestNothingWithoutLogin(t *testing.T) {
	e := newEnv(t, Options{})
	hc := e.browser()
	for _, p := range []struct{ method, path string }{
		{"GET", "/ui/api/machines"}, {"GET", "/ui/api/machines/web1/points"}, {"GET", "/ui/api/audit"},
		{"GET", "/ui/api/session"}, {"POST", "/ui/api/machines/web1/failover"}, {"POST", "/ui/api/machines/web1/commit"},
	} {
		resp, _ := e.do(hc, p.method, p.path, "x", testFailover)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without login: %d, want 401", p.method, p.path, resp.StatusCode)
		}
	}
	// A made-up cookie is no session either.
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/api/machines/web1/failover", strings.NewReader(`{"point":"latest","test":true,"out":"/x"}`))
	req.AddCookie(&http.Cookie{Name: CookieName, Value: randomToken()})
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session: %d, want 401", resp.StatusCode)
	}
	if n := e.api.calls(); n != 0 {
		t.Fatalf("%d actions ran without login", n)
	}
	// The page itself is served to anyone: it holds no data.
	resp, b := e.do(hc, "GET", "/ui/", "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("<html")) {
		t.Fatalf("GET /ui/: %d %.80s", resp.StatusCode, b)
	}
}

func TestCookieFlags(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("alice", api.RoleViewer)
	s, resp := e.login(e.browser(), "alice", pw)
	if resp.StatusCode != http.StatusOK || s.Role != api.RoleViewer || s.CSRF == "" {
		t.Fatalf("login: %d %+v", resp.StatusCode, s)
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != CookieName {
		t.Fatalf("cookies: %v", resp.Header.Values("Set-Cookie"))
	}
	c := cs[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || len(c.Value) < 40 {
		t.Fatalf("session cookie %q lacks HttpOnly, Secure, SameSite=Strict, Path=/ui/ or a long value", resp.Header.Get("Set-Cookie"))
	}
}

func TestViewerCannotAct(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("vera", api.RoleViewer)
	hc := e.browser()
	s, _ := e.login(hc, "vera", pw)
	if resp, b := e.do(hc, "GET", "/ui/api/machines", "", nil); resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("web1")) {
		t.Fatalf("viewer reads machines: %d %s", resp.StatusCode, b)
	}
	resp, b := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, testFailover)
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(b, []byte("viewer")) {
		t.Fatalf("viewer's failover: %d %s, want 403", resp.StatusCode, b)
	}
	resp, _ = e.do(hc, "POST", "/ui/api/machines/web1/commit", s.CSRF, commitRequest{Confirm: "web1"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer's commit: %d, want 403", resp.StatusCode)
	}
	resp, _ = e.do(hc, "POST", "/ui/api/groups/db/point", s.CSRF, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer's group point: %d, want 403", resp.StatusCode)
	}
	if n := e.api.calls(); n != 0 {
		t.Fatalf("a viewer ran %d actions", n)
	}
	if got := e.auditResults("failover"); len(got) != 1 || !strings.HasPrefix(got[0], "vera refused:") {
		t.Fatalf("audit of the refused failover: %q", got)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	s, _ := e.login(hc, "olga", pw)
	other := e.browser()
	s2, _ := e.login(other, "olga", pw)
	for name, tok := range map[string]string{"none": "", "wrong": randomToken(), "another session's": s2.CSRF} {
		resp, _ := e.do(hc, "POST", "/ui/api/machines/web1/failover", tok, testFailover)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, resp.StatusCode)
		}
	}
	// From another origin, even with the token.
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/api/machines/web1/failover", strings.NewReader(`{"point":"latest","test":true,"out":"/x"}`))
	req.Header.Set(CSRFHeader, s.CSRF)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin action: %d, want 403", resp.StatusCode)
	}
	if n := e.api.calls(); n != 0 {
		t.Fatalf("%d actions ran without a valid CSRF token", n)
	}
	// Nor may another site log a browser in.
	req, _ = http.NewRequest("POST", e.srv.URL+"/ui/api/login", strings.NewReader(`{"name":"olga","password":"`+pw+`"}`))
	req.Header.Set("Origin", "https://evil.example")
	resp, err = e.browser().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("cross-origin login: %d, cookies %v; want 403 and none", resp.StatusCode, resp.Cookies())
	}
	resp, b := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, testFailover)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("operator's test failover: %d %s", resp.StatusCode, b)
	}
	if len(e.api.failovers) != 1 || e.api.failovers[0] != testFailover.FailoverRequest {
		t.Fatalf("the admin API's handler got %+v, want %+v", e.api.failovers, testFailover.FailoverRequest)
	}
	got := e.auditResults("failover")
	want := []string{"olga refused: missing or wrong CSRF token", "olga refused: missing or wrong CSRF token", "olga refused: missing or wrong CSRF token", "olga refused: request from another origin"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit of the refusals: %q, want %q", got, want)
	}
	if got, want := e.auditResults("test-failover"), []string{"olga started", "olga ok"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit of the test failover: %q, want %q", got, want)
	}
}

func TestRealFailoverAndCommitNeedConfirmation(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	s, _ := e.login(hc, "olga", pw)
	real := failoverRequest{FailoverRequest: api.FailoverRequest{Point: "p1", Out: "/srv/fo"}}
	for _, confirm := range []string{"", "web2"} {
		real.Confirm = confirm
		if resp, _ := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, real); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("failover confirmed with %q: %d, want 400", confirm, resp.StatusCode)
		}
		if resp, _ := e.do(hc, "POST", "/ui/api/machines/web1/commit", s.CSRF, commitRequest{Confirm: confirm}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("commit confirmed with %q: %d, want 400", confirm, resp.StatusCode)
		}
	}
	if n := e.api.calls(); n != 0 {
		t.Fatalf("%d actions ran unconfirmed", n)
	}
	real.Confirm = "web1"
	if resp, b := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, real); resp.StatusCode != http.StatusOK {
		t.Fatalf("confirmed failover: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do(hc, "POST", "/ui/api/machines/web1/commit", s.CSRF, commitRequest{Confirm: "web1"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("confirmed commit: %d %s", resp.StatusCode, b)
	}
	// The admin API's own error comes back, and is audited as failed.
	if resp, _ := e.do(hc, "POST", "/ui/api/machines/nope/failover", s.CSRF, testFailover); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("failover of an unknown machine: %d, want the admin API's 404", resp.StatusCode)
	}
	if got := e.auditResults("test-failover"); len(got) != 2 || got[1] != "olga failed: unknown machine" {
		t.Fatalf("audit of the failed failover: %q", got)
	}
}

func TestGroupPoint(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	s, _ := e.login(hc, "olga", pw)
	if resp, _ := e.do(hc, "POST", "/ui/api/groups/db/point", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("group point without CSRF token: %d, want 403", resp.StatusCode)
	}
	resp, b := e.do(hc, "POST", "/ui/api/groups/db/point", s.CSRF, nil)
	if resp.StatusCode != http.StatusOK || len(e.api.groupPts) != 1 || e.api.groupPts[0] != "db" {
		t.Fatalf("group point: %d %s, handler asked for %q", resp.StatusCode, b, e.api.groupPts)
	}
	if got := e.auditResults("group-point"); len(got) != 2 || got[0] != "olga started" || got[1] != "olga ok" {
		t.Fatalf("audit: %q", got)
	}
	if got := e.auditResults("point"); len(got) != 1 || !strings.HasPrefix(got[0], "olga refused") {
		t.Fatalf("audit of the refusal: %q", got)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, Options{LoginLimit: 3, LoginWindow: time.Minute})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	for i := 0; i < 3; i++ {
		if _, resp := e.login(hc, "olga", "wrong-password-"+string(rune('a'+i))); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, resp.StatusCode)
		}
	}
	_, resp := e.login(hc, "olga", pw)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right password after 3 failures: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another account from the same address is refused too.
	pw2 := e.addUser("bob", api.RoleViewer)
	if _, resp := e.login(hc, "bob", pw2); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("other account from the same address: %d, want 429", resp.StatusCode)
	}
	if got := e.auditResults("login"); len(got) != 5 || !strings.HasPrefix(got[4], "bob refused: too many") {
		t.Fatalf("audit of the logins: %q", got)
	}
	// The window passes.
	e.c.limit.mu.Lock()
	for k, ts := range e.c.limit.fails {
		for i := range ts {
			ts[i] = ts[i].Add(-2 * time.Minute)
		}
		e.c.limit.fails[k] = ts
	}
	e.c.limit.mu.Unlock()
	if _, resp := e.login(hc, "olga", pw); resp.StatusCode != http.StatusOK {
		t.Fatalf("login after the window: %d", resp.StatusCode)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	e.login(hc, "olga", "a-wrong-secret-password")
	s, resp := e.login(hc, "olga", pw)
	tok := resp.Cookies()[0].Value
	e.do(hc, "POST", "/ui/api/machines/web1/failover", "", testFailover)
	e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, testFailover)
	e.do(hc, "POST", "/ui/api/logout", s.CSRF, nil)
	var files []string
	filepath.Walk(e.dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	texts := map[string]string{"the server's log": e.logs.String()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = string(b)
	}
	if !strings.Contains(texts[filepath.Join(e.dir, Dir, UsersFile)], "$2a$") {
		t.Fatalf("users.json holds no bcrypt hash:\n%s", texts[filepath.Join(e.dir, Dir, UsersFile)])
	}
	for where, text := range texts {
		for what, secret := range map[string]string{"password": pw, "wrong password": "a-wrong-secret-password", "session token": tok, "CSRF token": s.CSRF} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the %s", where, what)
			}
		}
	}
	if e.logs.Len() == 0 {
		t.Fatal("nothing logged: the check above proves nothing")
	}
	// The session ended with the logout.
	if resp, _ := e.do(hc, "GET", "/ui/api/session", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session after logout: %d", resp.StatusCode)
	}
}

func TestRemovedAccountLosesItsSession(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	hc := e.browser()
	s, _ := e.login(hc, "olga", pw)
	if err := e.c.users.Remove("olga"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(hc, "POST", "/ui/api/machines/web1/failover", s.CSRF, testFailover); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("removed account's action: %d, want 401", resp.StatusCode)
	}
}

func TestInitAdmin(t *testing.T) {
	dir := t.TempDir()
	file, err := InitAdmin(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	u, ok, err := NewUsers(dir).Check(AdminUser, strings.TrimSpace(string(b)))
	if err != nil || !ok || u.Role != api.RoleOperator {
		t.Fatalf("admin with the written password: %+v %v %v", u, ok, err)
	}
	if _, err := InitAdmin(dir); err != nil {
		t.Fatalf("second InitAdmin: %v", err)
	}
	b2, _ := os.ReadFile(file)
	if !bytes.Equal(b, b2) {
		t.Fatal("a second InitAdmin changed the admin password")
	}
}

type fakeSampler struct{ lag time.Duration }

func (f fakeSampler) Names(context.Context) ([]string, error) { return []string{"web1"}, nil }

func (f fakeSampler) Status(context.Context, string) (api.Machine, error) {
	return api.Machine{Name: "web1", Points: 3, LatestPoint: &api.Point{Time: time.Now().Add(-f.lag)},
		Disks: []api.DiskState{{Disk: "sda", NextSeq: 7}, {Disk: "sdb", NextSeq: 5}}}, nil
}

func TestHistoryIsBounded(t *testing.T) {
	h := newHistory(4)
	for i := 0; i < 10; i++ {
		h.sample(context.Background(), fakeSampler{lag: 90 * time.Second}, slog.Default())
	}
	ss := h.get("web1")
	if len(ss) != 4 {
		t.Fatalf("%d samples kept, want 4", len(ss))
	}
	if s := ss[3]; s.LagSeconds < 89 || s.LagSeconds > 120 || s.Segments != 12 || s.Points != 3 {
		t.Fatalf("sample %+v", s)
	}
}
