package process

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// A joined process server's certificate (issued at its join, valid a
// year) is renewed before it expires, over the mutual-TLS channel of its
// heartbeats, with the same key: once less than a third of its lifetime is
// left, at a heartbeat. The new certificate is saved (server.crt, one
// atomic replace), its process port presents it from the next handshake
// on (pki.LiveCert) and its heartbeats use it. docs/security.md.

// RenewDue reports whether a joined server's certificate is to be renewed
// now: less than a third of its lifetime left.
func RenewDue(leaf *x509.Certificate, now time.Time) bool {
	return leaf.NotAfter.Sub(now) < leaf.NotAfter.Sub(leaf.NotBefore)/3
}

// renewIfDue renews the certificate when due; failures are logged and
// tried again at the next heartbeat.
func (s *Membership) renewIfDue(ctx context.Context) {
	if s.o.Cert == nil {
		return
	}
	log := s.o.Log.With(httpapi.LogComponent, "scaleout")
	if err := s.renew(ctx); err != nil {
		s.mu.Lock()
		first := s.renewErr == ""
		s.renewErr = err.Error()
		s.mu.Unlock()
		if first {
			log.Warn("process server certificate renewal failed; will retry", httpapi.LogErr, err)
		}
		return
	}
	s.mu.Lock()
	s.renewErr = ""
	s.mu.Unlock()
}

func (s *Membership) renew(ctx context.Context) error {
	cur := s.o.Cert.Get()
	leaf := cur.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cur.Certificate[0]); err != nil {
			return err
		}
	}
	due := s.o.RenewDue
	if due == nil {
		due = RenewDue
	}
	if !due(leaf, time.Now()) {
		return nil
	}
	key, ok := cur.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("server key cannot sign")
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	certPEM, err := s.o.Client.Renew(rctx, key)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return fmt.Errorf("renewed certificate is not PEM")
	}
	nl, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if nl.Subject.CommonName != leaf.Subject.CommonName {
		return fmt.Errorf("renewed certificate names %q, not %q", nl.Subject.CommonName, leaf.Subject.CommonName)
	}
	// Only the new one may report from now on: save it first.
	if err := fsutil.WriteFileAtomic(filepath.Join(s.o.DataDir, pki.ServerCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("save renewed certificate: %w", err)
	}
	nc := tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: nl}
	s.o.Cert.Set(nc)
	s.o.Client.SetCertificate(nc)
	s.o.Log.With(httpapi.LogComponent, "scaleout").Info("process server certificate renewed", "serial", nl.SerialNumber.Text(16), "not_after", nl.NotAfter)
	return nil
}
