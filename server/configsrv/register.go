package configsrv

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// Issuer issues a machine's certificate (pki.CA).
type Issuer interface {
	IssueMachine(name string, csr *x509.CertificateRequest, now time.Time) ([]byte, error)
}

// RegisterMachines is what a registration needs of the machines: their
// records and the process server a machine is assigned to.
type RegisterMachines interface {
	UpdateErr(name string, f func(m *machines.Record) error) error
	Get(name string) (machines.Record, bool)
	// AssignProcessServer returns the process server to give the agent
	// that registers m through r, and the id to record as assigned.
	AssignProcessServer(r *http.Request, m string) (addr, id string, err error)
}

// Registration answers POST /v1/register (docs/protocol.md): an agent
// proves the registration passphrase or a one-time token, and gets its
// machine certificate, the CA and its process server.
type Registration struct {
	ca     Issuer
	caPEM  []byte
	pass   string
	tokens *Tokens
	m      RegisterMachines
	log    *slog.Logger
	// Limit slows down wrong proofs per source address (limiter.go).
	Limit *Limiter
	// Revoked, when set, gets the certificate a registration replaces.
	Revoked *pki.Revocations
}

// NewRegistration returns the registration handler: ca issues the
// certificates, caPEM is the CA certificate given to agents, pass the
// registration passphrase; log nil means slog.Default().
func NewRegistration(ca Issuer, caPEM []byte, pass string, tokens *Tokens, m RegisterMachines, log *slog.Logger) *Registration {
	if log == nil {
		log = slog.Default()
	}
	return &Registration{ca: ca, caPEM: caPEM, pass: pass, tokens: tokens, m: m, log: log, Limit: NewLimiter()}
}

// Register handles POST /v1/register (docs/protocol.md).
func (s *Registration) Register(w http.ResponseWriter, r *http.Request) error {
	var req api.RegisterRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if err := api.ValidName(req.Name); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "machine names are [A-Za-z0-9._-]{1,63}: set the agent's --name")
	}
	if req.Name == api.AdminName {
		return httpapi.Errorf(http.StatusBadRequest, "machine name \"admin\" is reserved", "give the agent another --name")
	}
	if nb, err := hex.DecodeString(req.Nonce); err != nil || len(nb) != 32 {
		return httpapi.Errorf(http.StatusBadRequest, "nonce is not 32 bytes of hex", "see docs/protocol.md for the registration request")
	}
	log := s.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, req.Name, httpapi.LogRemote, r.RemoteAddr)
	src := Source(r)
	if err := s.Limit.Allow(w, src); err != nil {
		log.Warn("registration refused: too many failures from this address")
		return err
	}
	if req.TokenID == "" {
		if !api.ProofEqual(req.PassphraseProof, api.RegisterProof(s.pass, req.Name, req.Nonce, req.CSR)) {
			s.Limit.Failed(src)
			log.Warn("registration refused: wrong passphrase proof")
			return httpapi.Errorf(http.StatusUnauthorized, "wrong passphrase",
				"the agent's passphrase file must hold the line in the server's DATA/passphrase")
		}
		s.Limit.Succeeded(src)
		cert, proc, err := s.registerMachine(r, req, false, log)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, s.registerAnswer(cert, proc, req.Nonce, s.pass))
		return nil
	}
	// A one-time token: its secret keys both proofs, and it is used up
	// only by a registration that succeeds.
	var ans api.RegisterResponse
	err := s.tokens.Use(strings.ToLower(req.TokenID), req.Name, time.Now(), func(secret string, forName bool) error {
		if !api.ProofEqual(req.PassphraseProof, api.RegisterProof(secret, req.Name, req.Nonce, req.CSR)) {
			return ErrTokenUnknown // the same answer as an unknown token: nothing to probe
		}
		cert, proc, err := s.registerMachine(r, req, forName, log)
		if err != nil {
			return err
		}
		ans = s.registerAnswer(cert, proc, req.Nonce, secret)
		return nil
	})
	if errors.Is(err, ErrTokenUnknown) {
		s.Limit.Failed(src)
		log.Warn("registration refused: bad token", "token_id", req.TokenID)
		return httpapi.Errorf(http.StatusUnauthorized, ErrTokenUnknown.Error(), TokenHint)
	}
	if err != nil {
		return err
	}
	s.Limit.Succeeded(src)
	log.Info("registration token used", "token_id", req.TokenID)
	httpapi.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// registerAnswer is the answer to a registration, proven with key (the
// passphrase or a token's secret).
func (s *Registration) registerAnswer(certPEM []byte, proc, nonce, key string) api.RegisterResponse {
	return api.RegisterResponse{
		Certificate:   string(certPEM),
		CA:            string(s.caPEM),
		ProcessServer: proc,
		ServerProof:   api.ServerProof(key, nonce, string(s.caPEM)),
	}
}

// registerMachine issues the certificate of a machine whose proof was
// checked and records the registration; it returns the certificate (PEM)
// and the process server to give the agent. An existing name needs
// approval (approveRegistration); tokenForName says the proof was a token
// issued for this name.
func (s *Registration) registerMachine(r *http.Request, req api.RegisterRequest, tokenForName bool, log *slog.Logger) (certPEM []byte, proc string, err error) {
	if rec, ok := s.m.Get(req.Name); ok {
		if err := approveRegistration(&rec, req.Name, tokenForName, time.Now()); err != nil {
			log.Warn("registration refused: the name is registered and no approval was given")
			return nil, "", err
		}
	}
	csr, err := pki.ParseCSRPEM([]byte(req.CSR))
	if err != nil {
		return nil, "", &httpapi.Error{Status: http.StatusBadRequest, Msg: "bad csr: " + err.Error(), Remedy: "send one PEM CERTIFICATE REQUEST signed with the agent's key", Err: err}
	}
	certPEM, err = s.ca.IssueMachine(req.Name, csr, time.Now())
	if err != nil {
		return nil, "", &httpapi.Error{Status: http.StatusBadRequest, Msg: "cannot issue a certificate for this csr: " + err.Error(), Remedy: "use an ECDSA P-256, Ed25519 or RSA-2048+ key", Err: err}
	}
	proc, assigned, err := s.m.AssignProcessServer(r, req.Name)
	if err != nil {
		return nil, "", err
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, "", err
	}
	now := time.Now().UTC()
	reprotected := false
	var replaced string
	if err := s.m.UpdateErr(req.Name, func(m *machines.Record) error {
		// Checked again under the record's lock: one approval, one
		// registration.
		if err := approveRegistration(m, req.Name, tokenForName, now); err != nil {
			return err
		}
		if m.Registered != nil && m.Serial != "" {
			// A registration again: the certificate it replaces is
			// refused from now on, and so is any older one.
			replaced = m.Serial
			m.SerialOnly = true
		}
		m.Revoked = nil
		m.Registered = &now
		m.Serial = cert.SerialNumber.Text(16)
		m.Assigned = assigned
		if m.State == api.StateCommitted || m.State == api.StateFailedBack {
			// Re-protection: from now on only this certificate may
			// replicate, never the old source's.
			m.State, m.Failover, m.Committed, m.SerialOnly = "", nil, nil, true
			m.Failback, m.FailedBack = nil, nil
			reprotected = true
		}
		if replaced != "" && s.Revoked != nil {
			return s.Revoked.Revoke(pki.Revoked{Serial: replaced, Name: req.Name, Time: now, Reason: "replaced by a new registration"})
		}
		return nil
	}); err != nil {
		return nil, "", err
	}
	if reprotected {
		log.Warn("committed machine registered again: protected again; certificates issued before are refused")
	}
	log.Info("machine registered", "serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter, "process_server", proc)
	return certPEM, proc, nil
}
