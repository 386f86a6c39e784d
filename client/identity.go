package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Reregister allows one registration under the name of an existing
// machine within api.ReregisterWindow (docs/security.md).
func (a *Admin) Reregister(ctx context.Context, machine string) (api.ReregisterAnswer, error) {
	var out api.ReregisterAnswer
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/reregister", nil, &out)
	return out, err
}

// Revoke revokes every certificate of a machine: both ports of the server
// refuse them from the next connection on.
func (a *Admin) Revoke(ctx context.Context, machine string) (api.RevokeAnswer, error) {
	var out api.RevokeAnswer
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/revoke", nil, &out)
	return out, err
}

// Renew asks the configuration server for a new certificate for key,
// authenticated by the machine's current certificate (the one this client
// was made with), which the server then revokes. It returns the new
// certificate (PEM).
func (c *AgentConfig) Renew(ctx context.Context, key crypto.Signer) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("renew: create csr: %w", err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var out api.RenewResponse
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base+api.PathRenew, api.RenewRequest{CSR: csr}, &out); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return []byte(out.Certificate), nil
}

// CloseIdleConnections closes the client's idle connections.
func (c *AgentConfig) CloseIdleConnections() { c.hc.CloseIdleConnections() }
