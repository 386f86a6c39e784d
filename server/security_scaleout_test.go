package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// handshake dials addr with a's certificate and reads once: TLS 1.3
// tells the client of a refused certificate at its first read. It returns
// nil when the server kept the connection (the read timed out).
func handshake(t *testing.T, a *servertest.Agent, addr string) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.CAPEM)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{a.Cert}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	return err
}

// A revocation reaches joined process servers with their next heartbeat:
// the revoked certificate fails the handshake of their process port too,
// also after a restart without the configuration server (issue 18).
func TestRevocationReachesJoinedProcessServers(t *testing.T) {
	e := newScaleEnv(t)
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatal(err)
	}
	e.startB()
	servertest.WaitFor(t, "ps2 healthy", func() bool { return e.server("ps2").Healthy })
	servertest.Register(t, e.a, e.dirA, "m1") // a tie: to the local role
	m2 := servertest.Register(t, e.a, e.dirA, "m2")
	if m2.Addr != e.b.ProcessAddr() {
		t.Fatalf("m2 assigned to %s, want ps2 at %s", m2.Addr, e.b.ProcessAddr())
	}
	servertest.WaitFor(t, "ps2 serving m2", func() bool {
		_, err := m2.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}})
		return err == nil
	})
	if err := handshake(t, m2, e.b.ProcessAddr()); err != nil {
		t.Fatalf("ps2 refuses m2's valid certificate: %v", err)
	}

	ans, err := e.admin.Revoke(ctx(t), "m2")
	if err != nil || len(ans.Serials) != 1 {
		t.Fatalf("revoke: %+v, %v", ans, err)
	}
	start := time.Now()
	servertest.WaitFor(t, "ps2 refusing the revoked certificate in the handshake", func() bool {
		err := handshake(t, m2, e.b.ProcessAddr())
		return err != nil && strings.Contains(err.Error(), "bad certificate")
	})
	took := time.Since(start)
	t.Logf("ps2 refused the revoked certificate %v after the revocation", took.Round(time.Millisecond))
	if max := 3 * api.DefaultHeartbeatSeconds * time.Second; took > max {
		t.Errorf("revocation took %v to reach ps2, want within %v", took, max)
	}
	b, err := os.ReadFile(filepath.Join(e.dirB, pki.RevokedFile))
	if err != nil || !strings.Contains(string(b), ans.Serials[0]) {
		t.Fatalf("ps2's revocation list on disk: %q, %v", b, err)
	}

	// Restarted while the configuration server is down: still refused.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	e.startB()
	if err := handshake(t, m2, e.b.ProcessAddr()); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("restarted ps2 without its configuration server, revoked certificate: %v, want the handshake refused", err)
	}
}
