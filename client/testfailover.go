package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestFailovers lists the test failovers whose images are kept, of one
// machine or ("") of all.
func (a *Admin) TestFailovers(ctx context.Context, machine string) ([]api.TestFailover, error) {
	var out []api.TestFailover
	u := a.base + api.PathTestFailovers
	if machine != "" {
		u += "?machine=" + url.QueryEscape(machine)
	}
	err := doJSON(ctx, a.hc, http.MethodGet, u, nil, &out)
	return out, err
}

// CleanupTestFailover removes the images a test failover wrote.
func (a *Admin) CleanupTestFailover(ctx context.Context, id string) (api.TestFailoverCleanup, error) {
	var out api.TestFailoverCleanup
	err := doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/test-failovers/"+escape(id), nil, &out)
	return out, err
}
