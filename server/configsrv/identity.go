package configsrv

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// IdentityMachines is what the identity endpoints need of the machines.
type IdentityMachines interface {
	// Param returns the machine of the URL, checked.
	Param(r *http.Request) (string, error)
	Get(name string) (machines.Record, bool)
	UpdateErr(name string, f func(m *machines.Record) error) error
}

// Identities answers the admin API of machine identities: approving that
// a name registers again, and revoking a machine's certificates
// (docs/security.md).
type Identities struct {
	m   IdentityMachines
	rev *pki.Revocations
	log *slog.Logger
}

// NewIdentities returns the handlers; rev is the server's revocation list.
func NewIdentities(m IdentityMachines, rev *pki.Revocations, log *slog.Logger) *Identities {
	if log == nil {
		log = slog.Default()
	}
	return &Identities{m: m, rev: rev, log: log.With(httpapi.LogComponent, "config")}
}

// Reregister handles POST /v1/machines/{m}/reregister: for
// api.ReregisterWindow, one registration under the machine's name is
// allowed with the passphrase.
func (s *Identities) Reregister(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	until := time.Now().Add(api.ReregisterWindow).UTC()
	if err := s.m.UpdateErr(m, func(rec *machines.Record) error {
		if rec.Registered == nil {
			return httpapi.Errorf(http.StatusNotFound, "machine "+m+" was never registered", "a new machine registers without approval")
		}
		rec.Reregister = &until
		return nil
	}); err != nil {
		return err
	}
	s.log.Warn("registration of an existing machine name allowed", httpapi.LogMachine, m, "until", until)
	httpapi.WriteJSON(w, http.StatusOK, api.ReregisterAnswer{Machine: m, Until: until})
	return nil
}

// Revoke handles POST /v1/machines/{m}/revoke: the machine's certificate
// goes on the revocation list (both ports refuse it from the next
// handshake on), and only a certificate of a later registration, which
// needs the operator's approval, is accepted again.
func (s *Identities) Revoke(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	var serials []string
	if err := s.m.UpdateErr(m, func(rec *machines.Record) error {
		if rec.Registered == nil {
			return httpapi.Errorf(http.StatusNotFound, "machine "+m+" was never registered", "see 'lifeboat machines'")
		}
		if rec.Serial != "" {
			serials = append(serials, rec.Serial)
			if err := s.rev.Revoke(pki.Revoked{Serial: rec.Serial, Name: m, Time: now, Reason: "revoked by the operator"}); err != nil {
				return err
			}
		}
		// Any older certificate of the machine is refused too: only
		// the serial of a new registration will be accepted.
		rec.Serial, rec.SerialOnly, rec.Revoked, rec.Reregister = "", true, &now, nil
		return nil
	}); err != nil {
		return err
	}
	s.log.Warn("machine certificates revoked", httpapi.LogMachine, m, "serials", serials)
	if serials == nil {
		serials = []string{}
	}
	httpapi.WriteJSON(w, http.StatusOK, api.RevokeAnswer{Machine: m, Serials: serials, Revoked: now})
	return nil
}

// approveRegistration decides whether a registration under the name of
// rec may proceed: a new name, a machine whose protection ended (committed
// or failed back: the re-protection of docs/server.md), a token issued for
// that very name, or the operator's approval (Reregister). It uses up the
// approval.
func approveRegistration(rec *machines.Record, name string, tokenForName bool, now time.Time) error {
	if rec.Registered == nil || rec.State == api.StateCommitted || rec.State == api.StateFailedBack || tokenForName {
		return nil
	}
	if rec.Reregister != nil && now.Before(*rec.Reregister) {
		rec.Reregister = nil
		return nil
	}
	return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s is already registered", name),
		"registering an existing name needs the operator's approval: run 'lifeboat machines reregister "+name+"' on the server (valid 24 h), "+
			"or use a registration token issued for this name ('lifeboat push-install', POST /v1/tokens with \"machine\"); "+
			"if this is another machine, give it another --name")
}

// clientVerifier checks a client certificate chain against the CA
// (pki.CA).
type clientVerifier interface {
	VerifyClient(chain []*x509.Certificate) (string, error)
}

// Renew handles POST /v1/renew: a machine authenticated by its current
// certificate (the latest of its registration, not revoked) gets a new one
// for the key of its CSR; the old one is revoked. No passphrase, no
// approval: only the holder of the current certificate can renew it.
func (s *Registration) Renew(w http.ResponseWriter, r *http.Request) error {
	v, ok := s.ca.(clientVerifier)
	if !ok || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return httpapi.Errorf(http.StatusUnauthorized, "no machine certificate", "renew with the machine's current certificate; an expired one cannot renew: register again with the operator's approval")
	}
	name, err := v.VerifyClient(r.TLS.PeerCertificates)
	if err != nil {
		return httpapi.Errorf(http.StatusUnauthorized, "certificate not valid: "+err.Error(), "an expired certificate cannot renew: have the operator run 'lifeboat machines reregister NAME' and register again")
	}
	if name == api.AdminName || strings.HasPrefix(name, pki.ServerCNPrefix) || api.ValidName(name) != nil {
		return httpapi.Errorf(http.StatusForbidden, "only a machine certificate renews here", "renew the admin certificate with 'lifeboat-server admin-cert renew'")
	}
	old := r.TLS.PeerCertificates[0].SerialNumber.Text(16)
	var req api.RenewRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	csr, err := pki.ParseCSRPEM([]byte(req.CSR))
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "bad csr: " + err.Error(), Remedy: "send one PEM CERTIFICATE REQUEST signed with the new key", Err: err}
	}
	now := time.Now().UTC()
	certPEM, err := s.ca.IssueMachine(name, csr, now)
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "cannot issue a certificate for this csr: " + err.Error(), Remedy: "use an ECDSA P-256, Ed25519 or RSA-2048+ key", Err: err}
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return err
	}
	if err := s.m.UpdateErr(name, func(rec *machines.Record) error {
		if rec.Registered == nil || rec.Serial != old || rec.Revoked != nil {
			return httpapi.Errorf(http.StatusForbidden, "certificate of machine "+name+" is not its current one",
				"only the certificate of the latest registration renews: register again with the operator's approval ('lifeboat machines reregister "+name+"')")
		}
		if s.Revoked != nil {
			if err := s.Revoked.Revoke(pki.Revoked{Serial: old, Name: name, Time: now, Reason: "renewed"}); err != nil {
				return err
			}
		}
		rec.Serial, rec.SerialOnly = cert.SerialNumber.Text(16), true
		return nil
	}); err != nil {
		return err
	}
	s.log.Info("machine certificate renewed", httpapi.LogMachine, name, "old_serial", old, "serial", rec16(cert), "not_after", cert.NotAfter)
	httpapi.WriteJSON(w, http.StatusOK, api.RenewResponse{Certificate: string(certPEM)})
	return nil
}

func rec16(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
