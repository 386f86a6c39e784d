package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server"
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

	// The list comes only when the joined server's differs.
	rev, err := pki.OpenRevocations(e.dirB)
	if err != nil {
		t.Fatal(err)
	}
	held, err := rev.List()
	if err != nil {
		t.Fatal(err)
	}
	bcert, err := pki.LoadServerCert(e.dirB)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := client.NewServer(e.a.APIAddr(), bcert, m2.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	for _, c := range []struct {
		digest string
		want   int
	}{{pki.ListDigest(held), 0}, {"", len(held)}} {
		ans, err := hc.Heartbeat(ctx(t), api.Heartbeat{Address: e.b.ProcessAddr(), Roles: []string{"process"}, Machines: []api.ServedMachine{}, RevokedDigest: c.digest})
		if err != nil || len(ans.Revoked) != c.want {
			t.Fatalf("heartbeat with digest %q: %d revoked, %v; want %d", c.digest, len(ans.Revoked), err, c.want)
		}
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

// After a scale-out move, a segment the agent sends again to the new
// process server (its acknowledgement from the old one was lost) is
// acknowledged as a duplicate when it is the segment accepted, and
// refused as a conflict when it differs: the digest is taken from the
// shared target storage, the old server's digest log being on another
// host (issue 18).
func TestScaleOutDuplicateAfterMoveComparedWithStore(t *testing.T) {
	e := newScaleEnv(t)
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatal(err)
	}
	e.startB()
	servertest.WaitFor(t, "ps2 healthy", func() bool { return e.server("ps2").Healthy })
	m1 := servertest.Register(t, e.a, e.dirA, "m1")
	if m1.Addr != e.a.ProcessAddr() {
		t.Fatalf("m1 assigned to %s, want the local role", m1.Addr)
	}
	if _, err := m1.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	s0, s1 := seg(t, "m1", "sda", 0, 0, 0xa0), seg(t, "m1", "sda", 1, 4096, 0xa1, "p1")
	mustPut(t, m1, "sda", 0, s0)
	mustPut(t, m1, "sda", 1, s1)
	if _, err := e.admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps2"}); err != nil {
		t.Fatalf("move: %v", err)
	}
	onB := processFor(t, m1, e.b.ProcessAddr())
	servertest.WaitFor(t, "ps2 serves m1", func() bool {
		st, err := onB.DiskState(ctx(t), "sda")
		return err == nil && st.NextSeq == 2
	})

	// The same bytes: a duplicate, for both segments.
	for seq, p := range []string{s0, s1} {
		ack, err := onB.PutSegmentFile(ctx(t), "sda", uint64(seq), p)
		if err != nil || !ack.Duplicate || ack.Acked != uint64(seq) {
			t.Fatalf("segment %d sent again after the move: %+v, %v; want acknowledged as a duplicate", seq, ack, err)
		}
	}
	// Other bytes under an applied number: a conflict, never an ack.
	other := seg(t, "m1", "sda", 1, 4096, 0xee, "p1")
	_, err := onB.PutSegmentFile(ctx(t), "sda", 1, other)
	if ae := wantStatus(t, err, http.StatusConflict); ae.Code != api.CodeSegmentConflict {
		t.Fatalf("a different segment 1 after the move: code %q (%s), want %s", ae.Code, ae.Message, api.CodeSegmentConflict)
	}
	// And the disk goes on: the next segment is accepted.
	if _, err := onB.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2)); err != nil {
		t.Fatal(err)
	}
}

// servedSerial is the serial of the certificate the TLS server at addr
// presents.
func servedSerial(t *testing.T, a *servertest.Agent, addr string) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.CAPEM)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{a.Cert}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// A joined process server renews its certificate over its heartbeat
// channel: its process port presents the new one without a restart, its
// heartbeats go on with it, it is kept across a restart, and the replaced
// one may no longer report (issue 18).
func TestJoinedServerRenewsItsCertificate(t *testing.T) {
	e := newScaleEnv(t)
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatal(err)
	}
	old, err := pki.LoadServerCert(e.dirB)
	if err != nil {
		t.Fatal(err)
	}
	oldLeaf, _ := x509.ParseCertificate(old.Certificate[0])
	oldSerial := oldLeaf.SerialNumber.Text(16)
	cfg := servertest.Config(t, e.dirB)
	cfg.Roles = server.Roles{Process: true}
	cfg.StoreDir, cfg.SharedStore = e.storeDir, true
	// Due for the certificate of the join only: one renewal.
	cfg.JoinedRenewDue = func(leaf *x509.Certificate, _ time.Time) bool { return leaf.SerialNumber.Text(16) == oldSerial }
	e.b = servertest.Start(t, cfg)
	// Placement counts only healthy servers: under load ps2's first
	// heartbeat may come after m2 registers, which then goes to ps1.
	servertest.WaitFor(t, "ps2 healthy in the server list", func() bool {
		s := e.server("ps2")
		return s.Healthy && s.Address == e.b.ProcessAddr()
	})
	servertest.Register(t, e.a, e.dirA, "m1") // a tie: to the local role
	m2 := servertest.Register(t, e.a, e.dirA, "m2")
	if m2.Addr != e.b.ProcessAddr() {
		t.Fatalf("m2 assigned to %s, want ps2", m2.Addr)
	}
	servertest.WaitFor(t, "ps2 presenting a renewed certificate", func() bool { return servedSerial(t, m2, e.b.ProcessAddr()) != oldSerial })
	newSerial := servedSerial(t, m2, e.b.ProcessAddr())
	saved, err := pki.LoadServerCert(e.dirB)
	if err != nil {
		t.Fatal(err)
	}
	if sl, _ := x509.ParseCertificate(saved.Certificate[0]); sl.SerialNumber.Text(16) != newSerial || sl.Subject.CommonName != oldLeaf.Subject.CommonName ||
		strings.Join(sl.DNSNames, ",") != strings.Join(oldLeaf.DNSNames, ",") {
		t.Fatalf("saved certificate %s %q %v, want serial %s, %q %v", sl.SerialNumber.Text(16), sl.Subject.CommonName, sl.DNSNames, newSerial, oldLeaf.Subject.CommonName, oldLeaf.DNSNames)
	}
	// Heartbeats go on with the new one, and the machine replicates.
	renewed := time.Now()
	servertest.WaitFor(t, "a heartbeat after the renewal", func() bool {
		s := e.server("ps2")
		return s.Healthy && s.LastHeartbeat != nil && s.LastHeartbeat.After(renewed)
	})
	servertest.WaitFor(t, "ps2 serving m2", func() bool {
		_, err := m2.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}})
		return err == nil
	})
	mustPut(t, m2, "sda", 0, seg(t, "m2", "sda", 0, 0, 0xa0))
	// The replaced certificate may no longer report.
	oc, err := client.NewServer(e.a.APIAddr(), old, m2.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.CloseIdleConnections()
	_, err = oc.Heartbeat(ctx(t), api.Heartbeat{Address: e.b.ProcessAddr(), Roles: []string{"process"}, Machines: []api.ServedMachine{}})
	if ae := wantStatus(t, err, http.StatusForbidden); !strings.Contains(ae.Message, "retired") {
		t.Errorf("heartbeat with the replaced certificate: %s", ae.Message)
	}
	// Restarted, it presents the renewed one and reports with it.
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	e.b = servertest.Start(t, cfg)
	if s := servedSerial(t, m2, e.b.ProcessAddr()); s != newSerial {
		t.Fatalf("restarted ps2 presents %s, want the renewed %s", s, newSerial)
	}
	restarted := time.Now()
	servertest.WaitFor(t, "a heartbeat after the restart", func() bool {
		s := e.server("ps2")
		return s.Healthy && s.LastHeartbeat != nil && s.LastHeartbeat.After(restarted)
	})
}
