package group

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// fakeLocal is a machine's part of a group point that records the phases
// it ran and fails those it is told to.
type fakeLocal struct {
	mu    sync.Mutex
	steps []string
	fail  map[string]error // by step
	valid bool             // what the validating round finds
	point api.AgentPoint
}

func newFakeLocal(id string) *fakeLocal {
	return &fakeLocal{fail: map[string]error{}, valid: true, point: api.AgentPoint{ID: id, Kind: "group", Gen: 7}}
}

func (l *fakeLocal) step(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = append(l.steps, s)
	return l.fail[s]
}

func (l *fakeLocal) ran() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.steps)
}

func (l *fakeLocal) Prepare(context.Context) error { return l.step("prepare") }
func (l *fakeLocal) Freeze() error                 { return l.step("freeze") }
func (l *fakeLocal) Cut(context.Context) error     { return l.step("cut") }
func (l *fakeLocal) Thaw(context.Context) error    { return l.step("thaw") }
func (l *fakeLocal) Validate(_ context.Context, decide func(bool) bool, written func(api.AgentPoint, error)) error {
	if err := l.step("validate"); err != nil {
		return err
	}
	if decide(l.valid) {
		written(l.point, l.step("commit"))
	}
	return nil
}

// pki is a CA and the certificates of machines it issued.
type pki struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	pool  *x509.CertPool
	certs map[string]tls.Certificate
}

func newPKI(t *testing.T, machines ...string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, key: key, pool: x509.NewCertPool(), certs: map[string]tls.Certificate{}}
	p.pool.AddCert(ca)
	for i, m := range machines {
		mk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		mt := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: m},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, mt, ca, &mk.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		p.certs[m] = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: mk}
	}
	return p
}

// member is a machine running Member behind a group listener.
type member struct {
	name  string
	addr  string
	local *fakeLocal
	done  chan error // Member's result
}

func startMember(t *testing.T, p *pki, name, id string) *member {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ListenConfig(func() *tls.Certificate { c := p.certs[name]; return &c }, p.pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	m := &member{name: name, addr: ln.Addr().String(), local: newFakeLocal(id), done: make(chan error, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			m.done <- err
			return
		}
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			m.done <- err
			return
		}
		gc := NewConn(tc, tc.ConnectionState().PeerCertificates[0].Subject.CommonName)
		defer gc.Close()
		first, err := gc.Recv(time.Now().Add(5 * time.Second))
		if err != nil {
			m.done <- err
			return
		}
		gc.First = first
		m.done <- Member(context.Background(), gc, m.local, MemberTimeouts{Phase: 5 * time.Second, FrozenMax: 10 * time.Second},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	return m
}

func (m *member) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-m.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("member %s did not finish", m.name)
		return nil
	}
}

// group runs a group point of coordinator c1 and members m2, m3.
type groupRun struct {
	p       *pki
	members map[string]*member
	coord   *fakeLocal
	s       Session
}

func newGroupRun(t *testing.T) *groupRun {
	p := newPKI(t, "c1", "m2", "m3")
	const id = "point-1"
	g := &groupRun{p: p, members: map[string]*member{}, coord: newFakeLocal(id)}
	g.s = Session{Group: "g", ID: id, Self: "c1", Machines: []string{"c1", "m2", "m3"}, Addrs: map[string]string{},
		Cert: p.certs["c1"], Pool: p.pool, Phase: 5 * time.Second, Prepare: 5 * time.Second}
	for _, m := range []string{"m2", "m3"} {
		g.members[m] = startMember(t, p, m, id)
		g.s.Addrs[m] = g.members[m].addr
	}
	return g
}

func TestCoordinateCommits(t *testing.T) {
	g := newGroupRun(t)
	p, err := Coordinate(context.Background(), g.s, g.coord)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "point-1" || p.Kind != "group" {
		t.Fatalf("point %+v", p)
	}
	want := []string{"prepare", "freeze", "cut", "thaw", "validate", "commit"}
	if got := g.coord.ran(); !slices.Equal(got, want) {
		t.Errorf("coordinator ran %v, want %v", got, want)
	}
	for name, m := range g.members {
		if err := m.result(t); err != nil {
			t.Errorf("member %s: %v", name, err)
		}
		if got := m.local.ran(); !slices.Equal(got, want) {
			t.Errorf("member %s ran %v, want %v", name, got, want)
		}
	}
}

// TestCoordinateFreezeFailure: a member that cannot freeze fails the
// point at freeze; the error names the phase and that member, everybody
// thaws, nobody cuts.
func TestCoordinateFreezeFailure(t *testing.T) {
	g := newGroupRun(t)
	g.members["m3"].local.fail["freeze"] = errors.New("FIFREEZE /data: device busy")
	_, err := Coordinate(context.Background(), g.s, g.coord)
	var pe *PhaseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a *PhaseError", err, err)
	}
	if pe.Phase != api.GroupOpFreeze || !slices.Equal(pe.Members, []string{"m3"}) {
		t.Fatalf("failed at %q on %v, want freeze on [m3]", pe.Phase, pe.Members)
	}
	if !strings.Contains(err.Error(), "failed at freeze") || !strings.Contains(err.Error(), "m3: freeze: FIFREEZE /data: device busy") {
		t.Errorf("error %q", err)
	}
	if api.Hint(err) == "" {
		t.Error("no hint")
	}
	if got := g.coord.ran(); !slices.Equal(got, []string{"prepare", "freeze", "thaw"}) {
		t.Errorf("coordinator ran %v", got)
	}
	if err := g.members["m3"].result(t); err == nil || !strings.Contains(err.Error(), "(freeze)") {
		t.Errorf("m3: %v", err)
	}
	// m2 froze, then was told to abort instead of cut: it thaws.
	if err := g.members["m2"].result(t); err == nil || !strings.Contains(err.Error(), "(cut)") || !strings.Contains(err.Error(), "abort") {
		t.Errorf("m2: %v", err)
	}
	if got := g.members["m2"].local.ran(); !slices.Equal(got, []string{"prepare", "freeze", "thaw"}) {
		t.Errorf("m2 ran %v", got)
	}
}

// TestCoordinateInvalidMemberAborts: a member whose frozen reads were
// touched fails validate; nobody commits.
func TestCoordinateInvalidMemberAborts(t *testing.T) {
	g := newGroupRun(t)
	g.members["m2"].local.valid = false
	_, err := Coordinate(context.Background(), g.s, g.coord)
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != api.GroupOpValidate || !slices.Equal(pe.Members, []string{"m2"}) {
		t.Fatalf("error %v, want validate failed on [m2]", err)
	}
	for _, l := range []*fakeLocal{g.coord, g.members["m2"].local, g.members["m3"].local} {
		if slices.Contains(l.ran(), "commit") {
			t.Errorf("committed after a failed validation: %v", l.ran())
		}
	}
	for name, m := range g.members {
		if err := m.result(t); err == nil {
			t.Errorf("member %s reports success", name)
		}
	}
}

// TestCoordinateUnreachableMember: a member without a listen address
// fails the point at connect, before anyone prepares.
func TestCoordinateUnreachableMember(t *testing.T) {
	g := newGroupRun(t)
	g.s.Addrs["m3"] = ""
	_, err := Coordinate(context.Background(), g.s, g.coord)
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != PhaseConnect || !slices.Equal(pe.Members, []string{"m3"}) {
		t.Fatalf("error %v, want connect failed on [m3]", err)
	}
	if len(g.coord.ran()) != 0 {
		t.Errorf("coordinator ran %v before every member was connected", g.coord.ran())
	}
}

// TestCollectNamesEveryFailure: the broadcast of a phase reports this
// machine's failure and each member's, sorted, and an answer of another
// operation as a failure.
func TestCollectNamesEveryFailure(t *testing.T) {
	var peers []*Conn
	answers := map[string]api.GroupMessage{
		"b": {Op: api.GroupOpCut, OK: true},
		"c": {Op: api.GroupOpCut, Error: "tracker cut: timeout"},
		"d": {Op: api.GroupOpFreeze, OK: true},
	}
	for name, ans := range answers {
		here, there := net.Pipe()
		t.Cleanup(func() { here.Close(); there.Close() })
		peers = append(peers, NewConn(here, name))
		go func() {
			c := NewConn(there, "coordinator")
			if _, err := c.Recv(time.Now().Add(5 * time.Second)); err == nil {
				c.Send(ans, time.Now().Add(5*time.Second))
			}
		}()
	}
	pe := Ask(peers, api.GroupMessage{Op: api.GroupOpCut, Group: "g", ID: "p"}, 5*time.Second).Collect(failure("a", errors.New("frozen too long")))
	if pe == nil || pe.Phase != api.GroupOpCut || !slices.Equal(pe.Members, []string{"a", "c", "d"}) {
		t.Fatalf("%+v, want cut failed on [a c d]", pe)
	}
	for _, s := range []string{"a: frozen too long", "c: cut: tracker cut: timeout", "d: cut: "} {
		if !strings.Contains(pe.Error(), s) {
			t.Errorf("error %q lacks %q", pe.Error(), s)
		}
	}
}
