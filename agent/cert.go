package agent

import (
	"crypto/tls"
	"crypto/x509"
)

// certificate returns the machine certificate Status shows.
func (a *Agent) certificate() *x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.Certificate
}

// SetCertificate replaces the machine certificate Status shows (after a
// renewal).
func (a *Agent) SetCertificate(c *x509.Certificate) {
	a.mu.Lock()
	a.cfg.Certificate = c
	a.mu.Unlock()
}

// SetGroupCertificate makes the group listener present c from its next
// handshake on, and the group points this machine coordinates use it
// (after a renewal: no restart needed). Without group points it does
// nothing.
func (a *Agent) SetGroupCertificate(c tls.Certificate) {
	if a.group == nil {
		return
	}
	a.mu.Lock()
	a.group.cfg.Cert = c
	a.mu.Unlock()
}

// groupCertificate is the machine certificate of the group port now.
func (a *Agent) groupCertificate() *tls.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.group.cfg.Cert
	return &c
}
