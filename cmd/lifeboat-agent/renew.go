package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// renewEvery is how often the agent looks at its certificate's age.
const renewEvery = 6 * time.Hour

// renewer renews the machine certificate before it expires, over the
// mutual-TLS channel to the configuration server, with the same key: once
// less than a third of its lifetime is left (four months of a year's), so
// that a server unreachable for weeks is no harm. Only the certificate
// file changes (one atomic replace). docs/security.md.
type renewer struct {
	server string // the configuration server
	idDir  string // STATE/identity
	id     *identity
	// uses are the clients that present the machine certificate.
	uses     []interface{ SetCertificate(tls.Certificate) }
	onRenew  func(*x509.Certificate)
	log      *slog.Logger
	due      func(leaf *x509.Certificate, now time.Time) bool // nil: a third of the lifetime left
	interval time.Duration
}

func renewDue(leaf *x509.Certificate, now time.Time) bool {
	return leaf.NotAfter.Sub(now) < leaf.NotAfter.Sub(leaf.NotBefore)/3
}

// run renews whenever due until ctx ends; failures are logged and retried
// at the next look (agentctl status warns 30 days before expiry).
func (r *renewer) run(ctx context.Context) {
	for {
		if err := r.once(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("machine certificate renewal failed; will retry", "err", err, "retry_in", r.interval.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.interval):
		}
	}
}

// once renews the certificate if due.
func (r *renewer) once(ctx context.Context) error {
	leaf := r.id.cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(r.id.cert.Certificate[0]); err != nil {
			return err
		}
	}
	due := r.due
	if due == nil {
		due = renewDue
	}
	if !due(leaf, time.Now()) {
		return nil
	}
	key, ok := r.id.cert.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("machine key cannot sign")
	}
	cfg, err := client.NewAgentConfig(r.server, r.id.cert, r.id.caPEM)
	if err != nil {
		return err
	}
	defer cfg.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	certPEM, err := cfg.Renew(rctx, key)
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
	// The server has revoked the old one: save the new one first.
	if err := fsutil.WriteFileAtomic(filepath.Join(r.idDir, "machine.crt"), certPEM, 0o600); err != nil {
		return fmt.Errorf("save renewed certificate: %w", err)
	}
	nc := tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: nl}
	r.id.cert = nc
	for _, u := range r.uses {
		u.SetCertificate(nc)
	}
	if r.onRenew != nil {
		r.onRenew(nl)
	}
	r.log.Info("machine certificate renewed", "serial", nl.SerialNumber.Text(16), "not_after", nl.NotAfter)
	return nil
}

// groupPort is the agent's group listener (port 20004) as a user of the
// machine certificate: a renewed one is served from the next handshake on.
type groupPort struct{ a *agent.Agent }

func (g groupPort) SetCertificate(c tls.Certificate) { g.a.SetGroupCertificate(c) }
