package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Users lists the web console's accounts.
func (a *Admin) Users(ctx context.Context) ([]api.User, error) {
	var us []api.User
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathUsers, nil, &us)
	return us, err
}

// AddUser adds a console account; with no password in req, the answer
// holds the one the server chose.
func (a *Admin) AddUser(ctx context.Context, req api.UserRequest) (api.UserAdded, error) {
	var res api.UserAdded
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+api.PathUsers, req, &res)
	return res, err
}

// RemoveUser removes a console account and ends its sessions.
func (a *Admin) RemoveUser(ctx context.Context, name string) error {
	return doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/users/"+escape(name), nil, nil)
}

// Audit returns the newest limit entries of the audit log, oldest first.
func (a *Admin) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	var es []api.AuditEntry
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathAudit+"?limit="+strconv.Itoa(limit), nil, &es)
	return es, err
}
