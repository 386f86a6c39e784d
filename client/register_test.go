package client_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRegister(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, s, dir, "web1")
	if a.Addr != s.ProcessAddr() {
		t.Errorf("process server %q, want %q", a.Addr, s.ProcessAddr())
	}
	leaf := a.Cert.Leaf
	if leaf.Subject.CommonName != "web1" {
		t.Errorf("certificate CN %q", leaf.Subject.CommonName)
	}
	// The certificate works on the process role.
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil {
		t.Fatal(err)
	}
	if st.NextSeq != 0 || st.Applied {
		t.Errorf("state of a new disk: %+v", st)
	}
	// Registering again (a reinstall), once the operator approved it
	// (issue 18: an existing name needs approval), issues a new
	// certificate.
	if _, err := servertest.Admin(t, s, dir).Reregister(ctx(t), "web1"); err != nil {
		t.Fatal(err)
	}
	b := servertest.Register(t, s, dir, "web1")
	if b.Cert.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("second registration gave the same certificate")
	}
}

func TestRegisterWrongPassphrase(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	key, _ := pki.NewKey()
	_, _, _, err := client.Register(ctx(t), s.APIAddr(), "web1", "not-the-passphrase", key)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("err %v, want a 401 APIError", err)
	}
	if ae.Hint() == "" {
		t.Error("401 without a hint")
	}
}

func TestRegisterBadNames(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	pass, _ := pki.ReadPassphrase(dir)
	key, _ := pki.NewKey()
	if _, _, _, err := client.Register(ctx(t), s.APIAddr(), "admin", pass, key); err == nil {
		t.Error("registered a machine named admin")
	}
	if _, _, _, err := client.Register(ctx(t), s.APIAddr(), "../x", pass, key); err == nil {
		t.Error("registered a machine named ../x")
	}
}

// forgedServer answers registrations with the CA of caDir and a server
// proof made with passphrase, over TLS with the server certificate of
// tlsDir.
func forgedServer(t *testing.T, caDir, tlsDir, passphrase string) string {
	t.Helper()
	cert, err := pki.LoadServerCert(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.RegisterRequest
		json.NewDecoder(r.Body).Decode(&req)
		csr, err := pki.ParseCSRPEM([]byte(req.CSR))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		c, _ := ca.IssueMachine(req.Name, csr, time.Now())
		json.NewEncoder(w).Encode(api.RegisterResponse{
			Certificate:   string(c),
			CA:            string(ca.CertPEM),
			ProcessServer: "127.0.0.1:1",
			ServerProof:   api.ServerProof(passphrase, req.Nonce, string(ca.CertPEM)),
		})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestRegisterForgedServer(t *testing.T) {
	genuine := servertest.Init(t)
	other := servertest.Init(t)
	pass, _ := pki.ReadPassphrase(genuine)
	key, _ := pki.NewKey()
	cases := []struct {
		name          string
		caDir, tlsDir string
		pass          string
	}{
		// Knows the passphrase (say, stolen), sends the genuine CA,
		// but cannot present a certificate of that CA.
		{"other CA on TLS", genuine, other, pass},
		// Its own CA throughout, but cannot prove the passphrase.
		{"no passphrase", other, other, "guess"},
		// A proof for a CA it does not present.
		{"proof for another CA", other, genuine, pass + "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := forgedServer(t, c.caDir, c.tlsDir, c.pass)
			_, _, _, err := client.Register(ctx(t), addr, "web1", pass, key)
			if !errors.Is(err, client.ErrServerProof) {
				t.Fatalf("err %v, want ErrServerProof", err)
			}
			if api.Hint(err) == "" {
				t.Error("no hint")
			}
		})
	}
	// The same forger with everything right is accepted: the test
	// server itself is sound.
	addr := forgedServer(t, genuine, genuine, pass)
	if _, _, _, err := client.Register(ctx(t), addr, "web1", pass, key); err != nil {
		t.Fatalf("genuine answer refused: %v", err)
	}
}
