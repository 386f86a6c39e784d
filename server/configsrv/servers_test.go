package configsrv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// recordMap is the records of a test: a map, no files.
type recordMap map[string]machines.Record

func (f recordMap) Get(n string) (machines.Record, bool) { r, ok := f[n]; return r, ok }

func (f recordMap) Update(n string, fn func(*machines.Record)) error {
	r := f[n]
	fn(&r)
	f[n] = r
	return nil
}

func (f recordMap) Each(fn func(string, *machines.Record)) {
	for n, r := range f {
		fn(n, &r)
	}
}

func (f recordMap) Param(r *http.Request) (string, error) { return r.PathValue("m"), nil }

type noLocal struct{}

func (noLocal) Addr(string) string                         { return "" }
func (noLocal) RegisterAddr(*http.Request) (string, error) { return "", errors.New("none") }
func (noLocal) Drain(context.Context, string) ([]api.DiskState, error) {
	return nil, errors.New("none")
}
func (noLocal) Release(string) {}

// TestServersJoinAndCheckLocal: a join needs the passphrase's proof, is
// recorded (and read again by Load), and shows as a silent server with
// its remedy; the configuration server's own process role refuses a
// machine assigned elsewhere, and every machine when it runs none.
func TestServersJoinAndCheckLocal(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ms := recordMap{"web1": {Assigned: "ps2"}, "db1": {}}
	o := ServersOptions{DataDir: dir, ID: "local", Roles: []string{"config"}, CA: ca, CAPEM: ca.CertPEM,
		Passphrase: "secret", Machines: ms, Local: noLocal{}, Log: slog.Default()}
	s := NewServers(o)

	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ps2"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	nonce := hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	join := func(pass string) *httptest.ResponseRecorder {
		req := api.JoinRequest{ID: "ps2", Nonce: nonce, CSR: csr, Proof: api.JoinProof(pass, "ps2", nonce, csr)}
		b, _ := json.Marshal(req)
		w := httptest.NewRecorder()
		httpapi.Handle(o.Log, s.Join).ServeHTTP(w, httptest.NewRequest(http.MethodPost, api.PathServerJoin, bytes.NewReader(b)))
		return w
	}
	if w := join("wrong"); w.Code != http.StatusUnauthorized {
		t.Fatalf("join with a wrong passphrase: %d %s", w.Code, w.Body)
	}
	if w := join("secret"); w.Code != http.StatusOK {
		t.Fatalf("join: %d %s", w.Code, w.Body)
	}

	s2 := NewServers(o)
	if err := s2.Load(); err != nil {
		t.Fatal(err)
	}
	ps := s2.processServers()
	if len(ps) != 1 || ps[0].ID != "ps2" || ps[0].Healthy || len(ps[0].Problems) != 1 || !strings.Contains(ps[0].Problems[0], "lifeboat move") {
		t.Fatalf("process servers after Load: %+v", ps)
	}

	var he *httpapi.Error
	if err := s2.CheckLocal("web1"); !errors.As(err, &he) || he.Status != http.StatusMisdirectedRequest || !strings.Contains(he.Msg, "ps2") {
		t.Fatalf("machine assigned to ps2, served locally: %v", err)
	}
	if err := s2.CheckLocal("db1"); !errors.As(err, &he) || he.Status != http.StatusMisdirectedRequest || !strings.Contains(he.Msg, "no process role") {
		t.Fatalf("no local process role: %v", err)
	}
	o.HasLocal = true
	if err := NewServers(o).CheckLocal("db1"); err != nil {
		t.Fatalf("local machine refused: %v", err)
	}
}
