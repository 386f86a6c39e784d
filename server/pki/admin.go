package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// issueAdmin issues the administrator's certificate for key: client auth
// only, valid AdminValidity (never beyond the CA).
func (ca *CA) issueAdmin(key crypto.Signer, now time.Time) ([]byte, error) {
	notAfter := now.Add(AdminValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	return ca.issueLeaf(AdminName, key.Public(), []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, notAfter, now)
}

// RenewAdmin replaces the administrator's certificate and key of dir by
// new ones valid AdminValidity, and revokes the old certificate (the
// server refuses it from its next handshake on; the revocation list is
// re-read when it changes). It returns the new certificate.
func RenewAdmin(dir string, now time.Time) (*x509.Certificate, error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	rev, err := OpenRevocations(dir)
	if err != nil {
		return nil, err
	}
	var oldSerial string
	if b, err := os.ReadFile(filepath.Join(dir, AdminCertFile)); err == nil {
		if old, err := ParseCertificatePEM(b); err == nil {
			oldSerial = old.SerialNumber.Text(16)
		}
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.issueAdmin(key, now)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	// Key first: a crash between the two leaves a key without its
	// certificate, and renewing again repairs it.
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, AdminKeyFile), mustKeyPEM(key), 0o600); err != nil {
		return nil, fmt.Errorf("renew admin certificate: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, AdminCertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("renew admin certificate: %w", err)
	}
	if oldSerial != "" {
		if err := rev.Revoke(Revoked{Serial: oldSerial, Name: AdminName, Time: now.UTC(), Reason: "admin certificate renewed"}); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// LoadAdminCert reads the administrator's certificate of dir.
func LoadAdminCert(dir string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, AdminCertFile))
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	return ParseCertificatePEM(b)
}
