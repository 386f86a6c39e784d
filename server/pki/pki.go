package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// Files of the data directory that this package writes.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	AdminCertFile  = "admin.crt"
	AdminKeyFile   = "admin.key"
	PassphraseFile = "passphrase"
)

// Lifetimes of the certificates.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	MachineValidity = 365 * 24 * time.Hour
	// AdminValidity is the administrator's certificate's: shorter than
	// the CA's, renewed with 'lifeboat-server admin-cert renew'
	// (docs/security.md).
	AdminValidity = 90 * 24 * time.Hour
)

// AdminName is the CommonName of the administrator's certificate.
const AdminName = "admin"

// ErrInitialized is wrapped by Init when the directory already has a CA.
var ErrInitialized = errors.New("already initialized")

// Error is an error with a hint for the operator.
type Error struct {
	Err    error
	Remedy string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// Options tune Init.
type Options struct {
	// SANs are extra DNS names or IP addresses of the server certificate,
	// besides localhost, 127.0.0.1, ::1 and the host name.
	SANs []string
	// Now is the time of issue; zero means time.Now().
	Now time.Time
}

// Init creates the identities of a new server in dir (created if
// missing): CA, server certificate, admin certificate and passphrase. It
// refuses a directory that already holds a CA. The CA files are written
// last, so an interrupted Init can be run again.
func Init(dir string, o Options) error {
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return &Error{
				Err:    fmt.Errorf("%s %w; use another --data or remove it", dir, ErrInitialized),
				Remedy: "init never overwrites a CA: every registered agent trusts it",
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ca, err := NewCA(now)
	if err != nil {
		return err
	}
	srvCert, srvKey, err := ca.IssueServer(serverSANs(o.SANs), now)
	if err != nil {
		return err
	}
	admKey, err := NewKey()
	if err != nil {
		return err
	}
	admCert, err := ca.issueAdmin(admKey, now)
	if err != nil {
		return err
	}
	pass, err := NewPassphrase()
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{ServerCertFile, srvCert, 0o644},
		{ServerKeyFile, mustKeyPEM(srvKey), 0o600},
		{AdminCertFile, admCert, 0o644},
		{AdminKeyFile, mustKeyPEM(admKey), 0o600},
		{PassphraseFile, []byte(pass + "\n"), 0o600},
		{CAKeyFile, mustKeyPEM(ca.Key), 0o600},
		{CACertFile, ca.CertPEM, 0o644},
	}
	for _, f := range files {
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	return nil
}

// serverSANs returns the default names of the server certificate plus
// extra.
func serverSANs(extra []string) []string {
	sans := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		sans = append(sans, h)
	}
	return append(sans, extra...)
}

// CA is a certificate authority: the server's, loaded from its data
// directory.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
}

// NewCA creates a self-signed ECDSA P-256 CA valid for CAValidity.
func NewCA(now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Lifeboat CA " + host, Organization: []string{"Lifeboat"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create ca: %w", err)
	}
	return &CA{Cert: cert, CertPEM: certPEM(der), Key: key}, nil
}

// LoadCA reads the CA of the data directory dir.
func LoadCA(dir string) (*CA, error) {
	certPEMBytes, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{
				Err:    fmt.Errorf("load ca: %s has no %s", dir, CACertFile),
				Remedy: fmt.Sprintf("run 'lifeboat-server init --data %s' first, or point --data at an initialized directory", dir),
			}
		}
		return nil, fmt.Errorf("load ca: %w", err)
	}
	cert, err := ParseCertificatePEM(certPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("load ca: %s: %w", CACertFile, err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca: %s: %w", CAKeyFile, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("load ca: %s does not match %s", CAKeyFile, CACertFile)
	}
	return &CA{Cert: cert, CertPEM: certPEMBytes, Key: key}, nil
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueServer issues a server certificate (server and client auth) for the
// given DNS names and IP addresses, with a new key, valid as long as the
// CA. It returns the certificate PEM and the key.
func (ca *CA) IssueServer(sans []string, now time.Time) ([]byte, crypto.Signer, error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "lifeboat-server", Organization: []string{"Lifeboat"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     ca.Cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, s := range sans {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate: %w", err)
	}
	return certPEM(der), key, nil
}

// IssueMachine issues the client certificate of machine name for the
// public key of csr, whose signature it checks: CommonName name, client
// auth only, valid MachineValidity. The subject of the CSR is ignored.
func (ca *CA) IssueMachine(name string, csr *x509.CertificateRequest, now time.Time) ([]byte, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	notAfter := now.Add(MachineValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	return ca.issueLeaf(name, csr.PublicKey, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, notAfter, now)
}

func (ca *CA) issueLeaf(cn string, pub crypto.PublicKey, eku []x509.ExtKeyUsage, notAfter, now time.Time) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Lifeboat"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", cn, err)
	}
	return certPEM(der), nil
}

// VerifyClient checks that cert (with intermediates) chains to the CA for
// client authentication, and returns its CommonName.
func (ca *CA) VerifyClient(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         ca.Pool(),
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", err
	}
	return chain[0].Subject.CommonName, nil
}

// LoadServerCert loads the server certificate and key of dir for a TLS
// listener.
func LoadServerCert(dir string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load server certificate: %w", err)
	}
	return c, nil
}

// ReadPassphrase reads the registration passphrase of dir: the first line
// of its passphrase file, without surrounding white space.
func ReadPassphrase(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, PassphraseFile))
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	p := strings.TrimSpace(line)
	if p == "" {
		return "", fmt.Errorf("read passphrase: %s is empty", filepath.Join(dir, PassphraseFile))
	}
	return p, nil
}

// NewPassphrase returns a random passphrase: 160 bits in 32 lowercase
// base32 characters.
func NewPassphrase() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new passphrase: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b)), nil
}

// NewKey returns a new ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return k, nil
}

// KeyPEM encodes a private key as a PEM "PRIVATE KEY" (PKCS #8).
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func mustKeyPEM(key crypto.Signer) []byte {
	b, err := KeyPEM(key)
	if err != nil {
		panic(err) // only keys this package made come here
	}
	return b
}

// ParseKeyPEM parses a PKCS #8, EC or PKCS #1 private key in PEM.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return s, nil
}

// ParseCertificatePEM parses the first certificate of a PEM text.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM certificate")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// ParseCSRPEM parses a PEM "CERTIFICATE REQUEST".
func ParseCSRPEM(b []byte) (*x509.CertificateRequest, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM certificate request")
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("data after the certificate request")
	}
	return x509.ParseCertificateRequest(blk.Bytes)
}

func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return errors.New("unsupported ECDSA curve")
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits, want 2048 or more", k.N.BitLen())
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// PublicKeysEqual reports whether two public keys are the same key.
func PublicKeysEqual(a, b crypto.PublicKey) bool { return publicKeysEqual(a, b) }

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// ServerCNPrefix starts the CommonName of the certificate of a process
// server that joined a configuration server (and of the configuration
// server's own client certificate towards them): "lifeboat-server:<id>".
// The colon keeps it apart from every machine name.
const ServerCNPrefix = "lifeboat-server:"

// IssueJoined issues the certificate of process server id for the public
// key of csr, whose signature it checks: CommonName ServerCNPrefix+id,
// server and client auth (it serves agents and calls the configuration
// server), the given DNS names and IP addresses, valid MachineValidity.
func (ca *CA) IssueJoined(id string, csr *x509.CertificateRequest, sans []string, now time.Time) ([]byte, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return ca.issueNamed(ServerCNPrefix+id, csr.PublicKey, sans, now)
}

// IssueClientKey issues a certificate of CommonName ServerCNPrefix+id with
// a new key, client and server auth: the configuration server's identity
// towards the process servers that joined it.
func (ca *CA) IssueClientKey(id string, now time.Time) (tls.Certificate, error) {
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	pemCert, err := ca.issueNamed(ServerCNPrefix+id, key.Public(), nil, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(pemCert, mustKeyPEM(key))
}

func (ca *CA) issueNamed(cn string, pub crypto.PublicKey, sans []string, now time.Time) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(MachineValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Lifeboat"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, s := range sans {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", cn, err)
	}
	return certPEM(der), nil
}

// LoadCACert loads only the CA certificate of dir: what a process server
// that joined a configuration server has (the CA key stays there). The
// returned CA verifies certificates but cannot issue any.
func LoadCACert(dir string) (*CA, error) {
	b, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	cert, err := ParseCertificatePEM(b)
	if err != nil {
		return nil, fmt.Errorf("load ca: %s: %w", CACertFile, err)
	}
	return &CA{Cert: cert, CertPEM: b}, nil
}
