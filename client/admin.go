package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
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

// Alerts returns the server's active and recently cleared alerts.
func (a *Admin) Alerts(ctx context.Context) (api.Alerts, error) {
	var as api.Alerts
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathAlerts, nil, &as)
	return as, err
}

// Server describes the server (GET /v1/server).
func (a *Admin) Server(ctx context.Context) (api.ServerInfo, error) {
	var si api.ServerInfo
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathServer, nil, &si)
	return si, err
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
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/failover", req, &res)
	return res, err
}

// Commit ends the protection of the old source of a machine that has
// failed over; it returns the machine.
func (a *Admin) Commit(ctx context.Context, machine string) (api.Machine, error) {
	var m api.Machine
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/commit", struct{}{}, &m)
	return m, err
}

// Policy returns the retention policy of a machine.
func (a *Admin) Policy(ctx context.Context, machine string) (api.Policy, error) {
	var p api.Policy
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/machines/"+escape(machine)+"/policy", nil, &p)
	return p, err
}

// SetPolicy sets the retention policy of a machine (p.Default: back to
// the default policy) and returns it.
func (a *Admin) SetPolicy(ctx context.Context, machine string, p api.Policy) (api.Policy, error) {
	var out api.Policy
	err := doJSON(ctx, a.hc, http.MethodPut, a.base+"/v1/machines/"+escape(machine)+"/policy", p, &out)
	return out, err
}

// Prune applies the retention policy of a machine now.
func (a *Admin) Prune(ctx context.Context, machine string) (api.PruneAnswer, error) {
	var out api.PruneAnswer
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/prune", struct{}{}, &out)
	return out, err
}

// Plans lists the recovery plans.
func (a *Admin) Plans(ctx context.Context) ([]api.Plan, error) {
	var ps []api.Plan
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathPlans, nil, &ps)
	return ps, err
}

// Plan returns a recovery plan.
func (a *Admin) Plan(ctx context.Context, name string) (api.Plan, error) {
	var p api.Plan
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/plans/"+escape(name), nil, &p)
	return p, err
}

// CreatePlan creates a recovery plan.
func (a *Admin) CreatePlan(ctx context.Context, p api.Plan) (api.Plan, error) {
	var out api.Plan
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+api.PathPlans, p, &out)
	return out, err
}

// DeletePlan deletes a recovery plan and returns it.
func (a *Admin) DeletePlan(ctx context.Context, name string) (api.Plan, error) {
	var out api.Plan
	err := doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/plans/"+escape(name), nil, &out)
	return out, err
}

// TestPlan runs the test failover of a plan; RunPlan its real failover.
func (a *Admin) TestPlan(ctx context.Context, name string, req api.PlanRequest) (api.PlanResult, error) {
	var out api.PlanResult
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/plans/"+escape(name)+"/test", req, &out)
	return out, err
}

// RunPlan runs the real failover of a plan: every machine is failed over.
func (a *Admin) RunPlan(ctx context.Context, name string, req api.PlanRequest) (api.PlanResult, error) {
	var out api.PlanResult
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/plans/"+escape(name)+"/run", req, &out)
	return out, err
}

// CreateToken issues a one-time registration token (for req.Machine
// only, when set). The answer holds the secret token; nothing else ever
// shows it again.
func (a *Admin) CreateToken(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	var t api.Token
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+api.PathTokens, req, &t)
	return t, err
}

// Tokens lists the live registration tokens, without their secrets.
func (a *Admin) Tokens(ctx context.Context) ([]api.Token, error) {
	var ts []api.Token
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathTokens, nil, &ts)
	return ts, err
}

// RevokeToken removes a live token so that it registers nothing.
func (a *Admin) RevokeToken(ctx context.Context, id string) (api.Token, error) {
	var t api.Token
	err := doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/tokens/"+escape(id), nil, &t)
	return t, err
}
