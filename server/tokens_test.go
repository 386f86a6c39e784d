package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/configsrv"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

func (e *env) admin() *client.Admin {
	t := e.t
	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, err := client.NewAdmin(e.srv.APIAddr(), read(pki.CACertFile), read(pki.AdminCertFile), read(pki.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.CloseIdleConnections)
	return a
}

func registerToken(t *testing.T, e *env, name, token string) error {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, _, proc, err := client.RegisterWithToken(ctx(t), e.srv.APIAddr(), name, token, key)
	if err == nil && (len(cert) == 0 || proc != e.srv.ProcessAddr()) {
		t.Fatalf("registration answered cert %d bytes, process server %q (want %q)", len(cert), proc, e.srv.ProcessAddr())
	}
	return err
}

// TestTokenRegistersOnce: a token registers its machine once; a second use,
// another machine's name, a forged token, a revoked or expired one are
// refused with a hint, and a used token stays used across a restart.
func TestTokenRegistersOnce(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	tok, err := a.CreateToken(ctx(t), api.TokenRequest{Machine: "web1", TTLSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, api.TokenPrefix+tok.ID+".") || tok.Machine != "web1" {
		t.Fatalf("token %+v", tok)
	}
	list, err := a.Tokens(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != tok.ID || list[0].Token != "" {
		t.Fatalf("tokens listed %+v: want one, without its secret", list)
	}

	// Bound to web1: another name is refused and the token stays.
	err = registerToken(t, e, "web2", tok.Token)
	if ae := wantStatus(t, err, http.StatusForbidden); !strings.Contains(ae.Message, `for machine "web1"`) || ae.Hint() == "" {
		t.Fatalf("other name: %v (hint %q)", err, ae.Hint())
	}
	// A wrong secret with the right id: refused, token unused.
	id, secret, _ := api.ParseToken(tok.Token)
	forged := api.TokenPrefix + id + "." + strings.Repeat("0", len(secret))
	ae := wantStatus(t, registerToken(t, e, "web1", forged), http.StatusUnauthorized)
	if !strings.Contains(ae.Message, "unknown, already used") || !strings.Contains(ae.Hint(), "--token-file") {
		t.Fatalf("forged token: %+v", ae)
	}
	if err := registerToken(t, e, "web1", tok.Token); err != nil {
		t.Fatalf("register with the token: %v", err)
	}
	ms, err := a.Machines(ctx(t))
	if err != nil || len(ms) != 1 || ms[0].Name != "web1" || ms[0].Registered == nil {
		t.Fatalf("machines after registration: %+v, %v", ms, err)
	}
	wantStatus(t, registerToken(t, e, "web1", tok.Token), http.StatusUnauthorized)
	e.restart()
	a = e.admin()
	wantStatus(t, registerToken(t, e, "web1", tok.Token), http.StatusUnauthorized)
	if list, err := a.Tokens(ctx(t)); err != nil || len(list) != 0 {
		t.Fatalf("tokens after use: %+v, %v", list, err)
	}

	// Revoked.
	tok2, err := a.CreateToken(ctx(t), api.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx(t), tok2.ID); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, registerToken(t, e, "any1", tok2.Token), http.StatusUnauthorized)
	_, err = a.RevokeToken(ctx(t), tok2.ID)
	wantStatus(t, err, http.StatusNotFound)

	// Bad requests.
	_, err = a.CreateToken(ctx(t), api.TokenRequest{TTLSeconds: 1 << 40})
	wantStatus(t, err, http.StatusBadRequest)
	_, err = a.CreateToken(ctx(t), api.TokenRequest{Machine: "admin"})
	wantStatus(t, err, http.StatusBadRequest)
	if err := registerToken(t, e, "web1", "not-a-token"); err == nil || api.Hint(err) == "" {
		t.Fatalf("malformed token: %v, want an error with a hint", err)
	}
	// The passphrase still registers.
	e.agent("web3")
}

// TestTokenExpires: a token past its expiry registers nothing and is
// dropped from the file.
func TestTokenExpires(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	tok, err := a.CreateToken(ctx(t), api.TokenRequest{TTLSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Age it on disk rather than sleep: rewrite its expiry in the past
	// and reopen.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(e.dir, configsrv.TokensFile)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(b), `"expires": "`, `"expires": "2001-01-01T00:00:00Z", "x": "`, 1)
	if err := os.WriteFile(f, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	e.local.Close()
	e.open()
	ae := wantStatus(t, registerToken(t, e, "web1", tok.Token), http.StatusUnauthorized)
	if !strings.Contains(ae.Message, "expired") {
		t.Fatalf("expired token: %+v", ae)
	}
}

// TestTokenRace: of many registrations racing with one token, exactly one
// succeeds.
func TestTokenRace(t *testing.T) {
	e := newEnv(t)
	tok, err := e.admin().CreateToken(ctx(t), api.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if registerToken(t, e, "m"+string(rune('a'+i)), tok.Token) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d registrations succeeded with one token, want 1", ok)
	}
}
