package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// SocketName is the local API's unix socket in the state directory.
const SocketName = api.AgentSocketName

// serveAPI serves the local API on the state directory's socket.
func (a *Agent) serveAPI(ctx context.Context) (*http.Server, error) {
	path := filepath.Join(a.cfg.StateDir, SocketName)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathAgentStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("POST "+api.PathAgentBookmark, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		var p Point
		var err error
		if r.URL.Query().Get("group") == "1" {
			p, err = a.GroupBookmark(ctx)
		} else {
			p, err = a.Bookmark(ctx, r.URL.Query().Get("app") == "1")
		}
		if err != nil {
			hint := "see agentctl status"
			if h := api.Hint(err); h != "" {
				hint = h
			}
			if errors.Is(err, context.DeadlineExceeded) && !a.allProtected() {
				err = errors.New("no point yet: a disk is still in initial sync or resync")
				hint = "agentctl status shows the progress; ask again once every disk is protected"
			}
			writeJSON(w, http.StatusServiceUnavailable, api.AgentError{Error: err.Error(), Hint: hint})
			return
		}
		if r.URL.Query().Get("wait") == "1" {
			if err := a.WaitListed(ctx, p.ID); err != nil {
				writeJSON(w, http.StatusGatewayTimeout, api.AgentError{Error: err.Error(), ID: p.ID,
					Hint: "the point is in the journal but the server has not listed it; see agentctl status"})
				return
			}
		}
		writeJSON(w, http.StatusOK, p)
	})
	a.handleBandwidth(mux)
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("local API stopped", "err", err)
		}
	}()
	return srv, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
