package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

// serveLocal serves h on the local API socket of a new state directory.
func serveLocal(t *testing.T, h http.Handler) string {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, api.AgentSocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return dir
}

func TestLocalStatusAndBookmark(t *testing.T) {
	var query string
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathAgentStatus, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.AgentStatus{Machine: "web1", Healthy: true})
	})
	mux.HandleFunc("POST "+api.PathAgentBookmark, func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		if r.URL.Query().Get("group") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(api.AgentError{Error: "group points are off", Hint: "start the agent with --group-listen"})
			return
		}
		json.NewEncoder(w).Encode(api.AgentPoint{ID: "p1", Kind: "app"})
	})
	l := NewLocal(serveLocal(t, mux))
	st, err := l.Status(context.Background())
	if err != nil || st.Machine != "web1" || !st.Healthy {
		t.Fatalf("status %+v, %v", st, err)
	}
	p, err := l.Bookmark(context.Background(), BookmarkOptions{App: true, Wait: true})
	if err != nil || p.ID != "p1" {
		t.Fatalf("bookmark %+v, %v", p, err)
	}
	if query != "app=1&wait=1" {
		t.Errorf("query %q", query)
	}
	_, err = l.Bookmark(context.Background(), BookmarkOptions{Group: true})
	if err == nil || err.Error() != "group points are off" || api.Hint(err) != "start the agent with --group-listen" {
		t.Fatalf("error %v, hint %q", err, api.Hint(err))
	}
}

func TestLocalNoAgent(t *testing.T) {
	_, err := NewLocal(t.TempDir()).Status(context.Background())
	var na *NoAgentError
	if !errors.As(err, &na) || filepath.Base(na.Socket) != api.AgentSocketName {
		t.Fatalf("error %v (%T), want a *NoAgentError", err, err)
	}
}
