package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// noGroupServer is a configuration server that assigns no group.
type noGroupServer struct{}

func (noGroupServer) SyncGroup(context.Context, string) (api.GroupAssignment, error) {
	return api.GroupAssignment{}, nil
}

func (noGroupServer) GroupResult(context.Context, api.GroupPointResult) error { return nil }

// testCA issues machine certificates with serial numbers of the caller's
// choice.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (ca *testCA) issue(t *testing.T, name string, serial int64, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestGroupListenerServesRenewedCertificate: after SetGroupCertificate
// (what a renewal calls), the group listener presents the new certificate
// from its next handshake on, without a restart, and a group point this
// machine coordinates dials with it.
func TestGroupListenerServesRenewedCertificate(t *testing.T) {
	ca := newTestCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old, renewed := ca.issue(t, "m1", 10, key), ca.issue(t, "m1", 11, key)
	peerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	peer := ca.issue(t, "m2", 20, peerKey)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	ta := newTestAgentWith(t, 1, func(c *Config) {
		c.Group = GroupConfig{Listen: "127.0.0.1:0", Server: noGroupServer{}, Cert: old, CA: caPEM}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ta.startGroup(ctx); err != nil {
		t.Fatal(err)
	}
	ta.mu.Lock()
	addr := ta.group.listen
	ta.mu.Unlock()
	if addr == "" {
		t.Fatal("group listener not bound")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	served := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{peer}, RootCAs: pool, ServerName: "m1",
			InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatalf("dial the group listener: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := served(); s != 10 {
		t.Fatalf("group listener presents serial %d, want 10", s)
	}
	ta.SetGroupCertificate(renewed)
	if s := served(); s != 11 {
		t.Fatalf("after the renewal the group listener presents serial %d, want the renewed 11", s)
	}
	if c := ta.groupCertificate(); len(c.Certificate) == 0 || string(c.Certificate[0]) != string(renewed.Certificate[0]) {
		t.Fatal("group points would dial with the old certificate")
	}
}
