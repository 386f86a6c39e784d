package server_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// registerAs registers name with the passphrase, as a new key would.
func registerAs(ctx context.Context, t *testing.T, addr, dir, name string) (*servertest.Agent, error) {
	t.Helper()
	pass, err := pki.ReadPassphrase(dir)
	if err != nil {
		t.Fatal(err)
	}
	return registerWith(t, name, func(key crypto.Signer) ([]byte, []byte, string, error) {
		return client.Register(ctx, addr, name, pass, key)
	})
}

// registerWith registers name with a new key through reg.
func registerWith(t *testing.T, name string, reg func(key crypto.Signer) ([]byte, []byte, string, error)) (*servertest.Agent, error) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, caPEM, addr, err := reg(key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProcess(addr, cert, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return &servertest.Agent{Name: name, Cert: cert, CAPEM: caPEM, Process: p, Addr: addr}, nil
}

// Registering an existing machine's name needs the operator's approval
// ('lifeboat machines reregister', or a token for that name) and retires
// the old certificate; 'lifeboat machines revoke' makes both ports refuse
// the machine's certificate (issue 18, item 1).
func TestReregisterNeedsApprovalAndRevokeRefuses(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	adm := servertest.Admin(t, s, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := servertest.Register(t, s, dir, "web1")
	disks := []api.DiskSpec{{Name: "sda", Size: 1 << 20}}
	if _, err := first.Process.SetMachine(ctx, disks); err != nil {
		t.Fatal(err)
	}

	// Anyone with the passphrase: refused.
	if _, err := registerAs(ctx, t, s.APIAddr(), dir, "web1"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("registering an existing name without approval: %v, want 409", err)
	}
	if _, err := first.Process.SetMachine(ctx, disks); err != nil {
		t.Fatalf("the machine's own certificate after a refused registration: %v", err)
	}

	// With the operator's approval: once.
	if _, err := adm.Reregister(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	second, err := registerAs(ctx, t, s.APIAddr(), dir, "web1")
	if err != nil {
		t.Fatalf("registering again with approval: %v", err)
	}
	if _, err := second.Process.SetMachine(ctx, disks); err != nil {
		t.Fatalf("the new certificate: %v", err)
	}
	first.Process.CloseIdleConnections()
	if _, err := first.Process.SetMachine(ctx, disks); err == nil {
		t.Error("the replaced certificate still replicates")
	}
	if _, err := registerAs(ctx, t, s.APIAddr(), dir, "web1"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a second registration on one approval: %v, want 409", err)
	}

	// A token issued for the name is an approval too.
	tok, err := adm.CreateToken(ctx, api.TokenRequest{Machine: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	third, err := registerWith(t, "web1", func(key crypto.Signer) ([]byte, []byte, string, error) {
		return client.RegisterWithToken(ctx, s.APIAddr(), "web1", tok.Token, key)
	})
	if err != nil {
		t.Fatalf("registering again with a token for the name: %v", err)
	}

	// Revoked: refused in the handshake of both ports.
	ans, err := adm.Revoke(ctx, "web1")
	if err != nil || len(ans.Serials) != 1 {
		t.Fatalf("revoke: %+v, %v", ans, err)
	}
	third.Process.CloseIdleConnections()
	if _, err := third.Process.SetMachine(ctx, disks); err == nil {
		t.Error("a revoked certificate replicates")
	}
	for _, port := range []string{s.ProcessAddr(), s.APIAddr()} {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(third.CAPEM)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", port,
			&tls.Config{Certificates: []tls.Certificate{third.Cert}, RootCAs: pool, ServerName: "localhost"})
		if err == nil {
			// TLS 1.3: the client learns of a refused certificate at its
			// first read.
			c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("port %s with a revoked certificate: %v, want the handshake refused", port, err)
		}
	}
}
