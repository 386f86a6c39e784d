package pki

import (
	"crypto/tls"
	"sync/atomic"
)

// LiveCert is a certificate that a renewal replaces while listeners and
// clients use it: a listener that takes GetCertificate presents the new
// one from its next handshake on, without a restart. Safe for concurrent
// use.
type LiveCert struct {
	p atomic.Pointer[tls.Certificate]
}

// NewLiveCert returns a LiveCert holding c.
func NewLiveCert(c tls.Certificate) *LiveCert {
	l := &LiveCert{}
	l.Set(c)
	return l
}

// Get returns the certificate now.
func (l *LiveCert) Get() tls.Certificate { return *l.p.Load() }

// Set replaces the certificate.
func (l *LiveCert) Set(c tls.Certificate) { l.p.Store(&c) }

// GetCertificate is tls.Config.GetCertificate.
func (l *LiveCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return l.p.Load(), nil
}
