package server

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/console"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// Discarding a poisoned segment (process.Role.Discard) is composed here:
// the configuration role routes the operator's request to the machine's
// process server (configsrv.Servers.Discard), and the action goes to the
// audit log.

// Discard is the local process role's discard (configsrv.LocalDiscarder).
func (l localProc) Discard(ctx context.Context, m, disk string, seq uint64) (api.DiscardResult, error) {
	if l.s.proc == nil {
		return api.DiscardResult{}, httpapi.Errorf(http.StatusMisdirectedRequest, "this server runs no process role", "see 'lifeboat machines' for the machine's process server")
	}
	if err := l.s.checkAssigned(m); err != nil {
		return api.DiscardResult{}, err
	}
	return l.s.proc.Discard(ctx, m, disk, seq)
}

// audited writes an admin-API action to the audit log, whatever its
// outcome, before its answer.
func (s *Server) audited(action string, h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		// The request is part of what was done: keep it (bounded) for
		// the entry, and give the handler the same bytes.
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10))
		r.Body = io.NopCloser(bytes.NewReader(body))
		target := r.URL.Path
		if b := bytes.TrimSpace(body); len(b) > 0 {
			target += " " + string(b)
		}
		err := h(w, r)
		e := api.AuditEntry{User: console.AdminCertUser, Action: action, Target: target, Result: "ok", Remote: r.RemoteAddr}
		if err != nil {
			e.Result = "failed: " + err.Error()
		}
		if werr := console.NewAudit(s.dir).Write(e); werr != nil {
			s.log.Error("audit log not written", httpapi.LogErr, werr, "action", action)
		}
		return err
	}
}
