package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/lifeboat-dr/lifeboat/api"
)

// AgentConfig is the agent's client of the configuration role, with its
// machine certificate: for now, its replication group. Safe for concurrent
// use.
type AgentConfig struct {
	base string
	hc   *http.Client
	cert atomic.Pointer[tls.Certificate] // SetCertificate
}

// NewAgentConfig returns a client of the configuration server at addr
// ("host:port" or an https URL) that authenticates with the machine's
// certificate and trusts only caPEM.
func NewAgentConfig(addr string, cert tls.Certificate, caPEM []byte) (*AgentConfig, error) {
	base, err := baseURL(addr)
	if err != nil {
		return nil, fmt.Errorf("config client: %w", err)
	}
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("config client: ca: %w", err)
	}
	c := &AgentConfig{base: base}
	c.cert.Store(&cert)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.cert.Load(), nil }}
	c.hc = newHTTPClient(cfg)
	return c, nil
}

// SetCertificate makes new connections use cert (a renewed certificate)
// and closes the idle ones.
func (c *AgentConfig) SetCertificate(cert tls.Certificate) {
	c.cert.Store(&cert)
	c.hc.CloseIdleConnections()
}

// SyncGroup reports where the agent listens for group points and returns
// its group.
func (c *AgentConfig) SyncGroup(ctx context.Context, addr string) (api.GroupAssignment, error) {
	var out api.GroupAssignment
	err := doJSON(ctx, c.hc, http.MethodPut, c.base+api.PathAgentGroup, api.GroupReport{Addr: addr}, &out)
	return out, err
}

// GroupResult reports the outcome of a group point (the coordinator).
func (c *AgentConfig) GroupResult(ctx context.Context, r api.GroupPointResult) error {
	return doJSON(ctx, c.hc, http.MethodPost, c.base+api.PathAgentGroupResult, r, nil)
}

// Groups lists the replication groups.
func (a *Admin) Groups(ctx context.Context) ([]api.Group, error) {
	var gs []api.Group
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathGroups, nil, &gs)
	return gs, err
}

// Group returns one replication group.
func (a *Admin) Group(ctx context.Context, name string) (api.Group, error) {
	var g api.Group
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/groups/"+escape(name), nil, &g)
	return g, err
}

// CreateGroup creates a replication group.
func (a *Admin) CreateGroup(ctx context.Context, req api.GroupRequest) (api.Group, error) {
	var g api.Group
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+api.PathGroups, req, &g)
	return g, err
}

// DeleteGroup deletes a replication group; its members' points stay.
func (a *Admin) DeleteGroup(ctx context.Context, name string) (api.Group, error) {
	var g api.Group
	err := doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/groups/"+escape(name), nil, &g)
	return g, err
}

// GroupPoints lists the listed points of a group, oldest first.
func (a *Admin) GroupPoints(ctx context.Context, name string) ([]api.GroupPoint, error) {
	var ps []api.GroupPoint
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/groups/"+escape(name)+"/points", nil, &ps)
	return ps, err
}

// GroupPoint asks the group's coordinator for a group point now and
// returns its outcome, waiting at most wait (0: the server's default).
func (a *Admin) GroupPoint(ctx context.Context, name string, wait string) (api.GroupPointResult, error) {
	var r api.GroupPointResult
	u := a.base + "/v1/groups/" + escape(name) + "/point"
	if wait != "" {
		u += "?wait=" + url.QueryEscape(wait)
	}
	err := doJSON(long(ctx), a.hc, http.MethodPost, u, nil, &r)
	return r, err
}

// GroupFailover materializes every member of a group at a group point.
func (a *Admin) GroupFailover(ctx context.Context, name string, req api.GroupFailoverRequest) (api.GroupFailoverResult, error) {
	var r api.GroupFailoverResult
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/groups/"+escape(name)+"/failover", req, &r)
	return r, err
}
