package configsrv

import (
	"fmt"
	"log/slog"
	"net/http"
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
