package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Join joins process server id to the configuration server at addr with
// the registration passphrase, as Register does for a machine: an HMAC
// proof of the passphrase, then the answer is accepted only if the server
// proved it knows the passphrase too and this connection's certificate
// chains to the CA it sent. It returns the process server's certificate
// (PEM, for key; its names are sans) and the answer.
func Join(ctx context.Context, addr, id, passphrase string, sans []string, key crypto.Signer) (api.JoinResponse, error) {
	var ans api.JoinResponse
	if err := api.ValidName(id); err != nil {
		return ans, fmt.Errorf("join: server id %w", err)
	}
	if passphrase == "" {
		return ans, errors.New("join: empty passphrase")
	}
	base, err := baseURL(addr)
	if err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return ans, fmt.Errorf("join: create csr: %w", err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	nb := make([]byte, 32)
	if _, err := rand.Read(nb); err != nil {
		return ans, fmt.Errorf("join: nonce: %w", err)
	}
	nonce := hex.EncodeToString(nb)
	req := api.JoinRequest{ID: id, Nonce: nonce, CSR: csr, SANs: sans, Proof: api.JoinProof(passphrase, id, nonce, csr)}
	// As in Register: the server is authenticated after the answer.
	hc := newHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
	defer hc.CloseIdleConnections()
	body, err := jsonBody(req)
	if err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	ctx, cancel := bound(ctx, callTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+api.PathServerJoin, body)
	if err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	defer resp.Body.Close()
	if err := decode(resp, &ans); err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	reg := api.RegisterResponse{Certificate: ans.Certificate, CA: ans.CA, ServerProof: ans.ServerProof, ProcessServer: "-"}
	if err := checkRegistration(resp.TLS, reg, passphrase, nonce, "lifeboat-server:"+id, key.Public()); err != nil {
		return ans, fmt.Errorf("join: %w", err)
	}
	return ans, nil
}

// Server is a joined process server's client of the configuration role,
// with its own certificate. Safe for concurrent use.
type Server struct {
	base string
	hc   *http.Client
	// cert is the client certificate of new connections (SetCertificate).
	cert atomic.Pointer[tls.Certificate]
}

// NewServer returns a client of the configuration server at addr that
// authenticates with cert and trusts only caPEM.
func NewServer(addr string, cert tls.Certificate, caPEM []byte) (*Server, error) {
	base, err := baseURL(addr)
	if err != nil {
		return nil, fmt.Errorf("server client: %w", err)
	}
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("server client: ca: %w", err)
	}
	c := &Server{base: base}
	c.cert.Store(&cert)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }}
	c.hc = newHTTPClient(cfg)
	return c, nil
}

// SetCertificate makes new connections use cert (a renewed certificate)
// and closes the idle ones.
func (c *Server) SetCertificate(cert tls.Certificate) {
	c.cert.Store(&cert)
	c.hc.CloseIdleConnections()
}

// Renew asks the configuration server for a new certificate of this
// process server for key, authenticated by the current one (PEM).
func (c *Server) Renew(ctx context.Context, key crypto.Signer) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("renew: create csr: %w", err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var out api.RenewResponse
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base+api.PathServerRenew, api.RenewRequest{CSR: csr}, &out); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return []byte(out.Certificate), nil
}

// Heartbeat reports the process server and returns its assignment.
func (c *Server) Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAnswer, error) {
	var out api.HeartbeatAnswer
	err := doJSON(ctx, c.hc, http.MethodPut, c.base+api.PathServerHeartbeat, hb, &out)
	return out, err
}

// CloseIdleConnections closes the client's idle connections.
func (c *Server) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Servers lists the process servers.
func (a *Admin) Servers(ctx context.Context) ([]api.ProcessServer, error) {
	var out []api.ProcessServer
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathServers, nil, &out)
	return out, err
}

// Move moves a machine to another process server.
func (a *Admin) Move(ctx context.Context, machine string, req api.MoveRequest) (api.MoveResult, error) {
	var out api.MoveResult
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/move", req, &out)
	return out, err
}

// SetAddr points the client at another process server (host:port or an
// https URL): the next request goes there. The agent calls it when the
// configuration server moved its machine.
func (p *Process) SetAddr(addr string) error {
	base, err := baseURL(addr)
	if err != nil {
		return fmt.Errorf("process client: %w", err)
	}
	p.mu.Lock()
	old := p.base
	p.base = base
	p.mu.Unlock()
	if old != base {
		p.hc.CloseIdleConnections()
	}
	return nil
}

// Addr returns the process server the client talks to.
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.TrimPrefix(p.base, "https://")
}
