package agent

import "crypto/x509"

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
