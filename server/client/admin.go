package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/server/api"
)

// Admin is a client of the admin API of a configuration server, with the
// administrator's certificate. Safe for concurrent use.
type Admin struct {
	base string
	hc   *http.Client
}

// NewAdmin returns a client of the admin API at serverURL (an https URL or
// "host:port") that trusts caPEM and authenticates with the admin
// certificate and key (PEM).
func NewAdmin(serverURL string, caPEM, certPEM, keyPEM []byte) (*Admin, error) {
	base, err := baseURL(serverURL)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("admin client: ca: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("admin client: certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
	return &Admin{base: base, hc: newHTTPClient(cfg)}, nil
}

// CloseIdleConnections closes the client's idle connections.
func (a *Admin) CloseIdleConnections() { a.hc.CloseIdleConnections() }

// Machines lists the machines the server knows.
func (a *Admin) Machines(ctx context.Context) ([]api.Machine, error) {
	var ms []api.Machine
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathMachines, nil, &ms)
	return ms, err
}

// Points lists the recovery points of a machine, oldest first.
func (a *Admin) Points(ctx context.Context, machine string) ([]api.Point, error) {
	var ps []api.Point
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/machines/"+escape(machine)+"/points", nil, &ps)
	return ps, err
}

// Failover materializes the disks of a machine at a point on the server
// host.
func (a *Admin) Failover(ctx context.Context, machine string, req api.FailoverRequest) (api.FailoverResult, error) {
	var res api.FailoverResult
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/failover", req, &res)
	return res, err
}
