package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := Init(dir, Options{SANs: []string{"lifeboat.example", "192.0.2.7"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile, ServerKeyFile, AdminKeyFile, PassphraseFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Sub(ca.Cert.NotBefore) < CAValidity {
		t.Errorf("ca: IsCA %v, validity %v", ca.Cert.IsCA, ca.Cert.NotAfter.Sub(ca.Cert.NotBefore))
	}
	if ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("ca key: %v, want ECDSA", ca.Cert.PublicKeyAlgorithm)
	}
	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	for _, name := range []string{"localhost", "lifeboat.example"} {
		if !slices.Contains(srv.DNSNames, name) {
			t.Errorf("server certificate lacks DNS name %s: %v", name, srv.DNSNames)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "192.0.2.7"} {
		if !slices.ContainsFunc(srv.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) {
			t.Errorf("server certificate lacks IP %s: %v", ip, srv.IPAddresses)
		}
	}
	if h, _ := os.Hostname(); h != "" && !slices.Contains(srv.DNSNames, h) {
		t.Errorf("server certificate lacks the host name %s", h)
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	adm := readCert(t, filepath.Join(dir, AdminCertFile))
	if cn, err := ca.VerifyClient([]*x509.Certificate{adm}); err != nil || cn != AdminName {
		t.Errorf("admin certificate: cn %q, %v", cn, err)
	}
	pass, err := ReadPassphrase(dir)
	if err != nil || len(pass) < 20 {
		t.Errorf("passphrase %q, %v", pass, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, PassphraseFile))
	if strings.Count(string(b), "\n") != 1 {
		t.Errorf("passphrase file is not one line: %q", b)
	}
}

func TestInitRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	err := Init(dir, Options{})
	if !errors.Is(err, ErrInitialized) {
		t.Fatalf("second init: %v, want ErrInitialized", err)
	}
	want := dir + " already initialized; use another --data or remove it"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if string(before) != string(after) {
		t.Error("second init changed the CA")
	}
}

func TestIssueMachine(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	pemCert, err := ca.IssueMachine("web1", csr, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificatePEM(pemCert)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "web1" {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || c.IsCA {
		t.Errorf("ext key usage %v, IsCA %v", c.ExtKeyUsage, c.IsCA)
	}
	if d := c.NotAfter.Sub(now); d < MachineValidity-time.Minute || d > MachineValidity+time.Minute {
		t.Errorf("validity %v", d)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("machine certificate is valid for server auth")
	}
	// A CSR with a broken signature is refused.
	csr.Signature[len(csr.Signature)-1] ^= 1
	if _, err := ca.IssueMachine("web1", csr, now); err == nil {
		t.Error("issued for a CSR with a bad signature")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificatePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
