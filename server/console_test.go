package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/console"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestConsoleOnTheAPIPort: a browser, with no client certificate, logs in
// to /ui/ and sees what the admin API shows; the admin API itself still
// wants the admin certificate.
func TestConsoleOnTheAPIPort(t *testing.T) {
	dir := servertest.Init(t)
	passFile, err := console.InitAdmin(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := servertest.Config(t, dir)
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := servertest.Start(t, cfg)
	servertest.Register(t, s, dir, "web1")
	adm := servertest.Admin(t, s, dir)
	ctx := context.Background()

	caPEM, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	browser := &http.Client{Transport: tr, Jar: jar}
	base := "https://" + s.APIAddr()
	do := func(method, path, csrf string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if csrf != "" {
			req.Header.Set(console.CSRFHeader, csrf)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// Without the admin certificate the admin API refuses, also the
	// console's accounts and audit log.
	for _, p := range []string{api.PathMachines, api.PathUsers, api.PathAudit} {
		if code, _ := do("GET", p, "", nil); code != http.StatusUnauthorized {
			t.Fatalf("GET %s without a client certificate: %d, want 401", p, code)
		}
	}
	if code, b := do("GET", "/ui/", "", nil); code != http.StatusOK || !bytes.Contains(b, []byte("<html")) {
		t.Fatalf("GET /ui/ without a client certificate: %d %.100s", code, b)
	}
	pw, _ := os.ReadFile(passFile)
	code, b := do("POST", "/ui/api/login", "", map[string]string{"name": "admin", "password": strings.TrimSpace(string(pw))})
	if code != http.StatusOK {
		t.Fatalf("login as admin: %d %s", code, b)
	}
	var sess struct{ CSRF string }
	json.Unmarshal(b, &sess)

	code, b = do("GET", "/ui/api/machines", "", nil)
	var ms []api.Machine
	if code != http.StatusOK || json.Unmarshal(b, &ms) != nil || len(ms) != 1 || ms[0].Name != "web1" {
		t.Fatalf("console machines: %d %s", code, b)
	}
	want, err := adm.Machines(ctx)
	if err != nil || len(want) != 1 || want[0].Name != ms[0].Name || want[0].State != ms[0].State {
		t.Fatalf("admin API machines %+v (%v), console %+v", want, err, ms)
	}

	// A test failover from the console is the admin API's: a machine
	// with no point gets the same refusal.
	out := t.TempDir()
	req := api.FailoverRequest{Point: api.PointLatest, Test: true, Out: out}
	code, b = do("POST", "/ui/api/machines/web1/failover", sess.CSRF, req)
	_, apiErr := adm.Failover(ctx, "web1", req)
	var ae api.Error
	json.Unmarshal(b, &ae)
	if code/100 == 2 || apiErr == nil || !strings.Contains(apiErr.Error(), ae.Error) || ae.Error == "" {
		t.Fatalf("console failover %d %s; admin API: %v", code, b, apiErr)
	}

	// Accounts through the admin API; the audit log has the console's
	// actions and the admin's.
	added, err := adm.AddUser(ctx, api.UserRequest{Name: "vera", Role: api.RoleViewer})
	if err != nil || len(added.Password) < console.MinPassword {
		t.Fatalf("add user: %+v %v", added, err)
	}
	us, err := adm.Users(ctx)
	if err != nil || len(us) != 2 {
		t.Fatalf("users: %+v %v", us, err)
	}
	es, err := adm.Audit(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.User+" "+e.Action+" "+strings.SplitN(e.Result, ":", 2)[0])
	}
	wantAudit := "admin login ok|admin test-failover started|admin test-failover failed|admin-certificate users-add ok"
	if strings.Join(got, "|") != wantAudit {
		t.Fatalf("audit %q, want %q", got, wantAudit)
	}
	if err := adm.RemoveUser(ctx, "vera"); err != nil {
		t.Fatal(err)
	}
	// A wrong password is logged as a failed request, without it.
	if code, _ := do("POST", "/ui/api/login", "", map[string]string{"name": "admin", "password": "not-the-password-123"}); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	for what, secret := range map[string]string{"admin password": strings.TrimSpace(string(pw)), "wrong password": "not-the-password-123",
		"vera's password": added.Password, "CSRF token": sess.CSRF} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the server's log holds the %s", what)
		}
	}
	if !strings.Contains(logs.String(), "wrong account name or password") {
		t.Fatal("the failed login is not in the server's log: the check above proves nothing")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
