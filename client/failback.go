package client

import (
	"context"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// StartFailback starts the failback of a machine on the master target: a
// checksum compare of every disk, then deltas until CompleteFailback.
func (a *Admin) StartFailback(ctx context.Context, machine string, req api.FailbackRequest) (api.FailbackStatus, error) {
	var st api.FailbackStatus
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/failback", req, &st)
	return st, err
}

// Failback returns the running or last failback of a machine.
func (a *Admin) Failback(ctx context.Context, machine string) (api.FailbackStatus, error) {
	var st api.FailbackStatus
	err := doJSON(long(ctx), a.hc, http.MethodGet, a.base+"/v1/machines/"+escape(machine)+"/failback", nil, &st)
	return st, err
}

// CompleteFailback makes the final cut of a running failback, verifies
// and switches back; it returns once that is done.
func (a *Admin) CompleteFailback(ctx context.Context, machine string) (api.FailbackStatus, error) {
	var st api.FailbackStatus
	err := doJSON(long(ctx), a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/failback/complete", struct{}{}, &st)
	return st, err
}

// CancelFailback stops a running failback.
func (a *Admin) CancelFailback(ctx context.Context, machine string) (api.FailbackStatus, error) {
	var st api.FailbackStatus
	err := doJSON(long(ctx), a.hc, http.MethodDelete, a.base+"/v1/machines/"+escape(machine)+"/failback", nil, &st)
	return st, err
}
