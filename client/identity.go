package client

import (
	"context"
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
