package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Local talks to a running agent's local API (api/agent.go) over the unix
// socket in its state directory; agentctl uses it.
type Local struct {
	sock string
	hc   *http.Client
}

// NewLocal returns a client of the agent whose state directory is state.
func NewLocal(state string) *Local {
	sock := filepath.Join(state, api.AgentSocketName)
	return &Local{sock: sock, hc: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}}
}

// Socket is the agent's socket this client asks.
func (l *Local) Socket() string { return l.sock }

// NoAgentError: nothing listens on the agent's socket.
type NoAgentError struct {
	Socket string
	Err    error
}

func (e *NoAgentError) Error() string {
	return fmt.Sprintf("no agent answers on %s: %v", e.Socket, e.Err)
}
func (e *NoAgentError) Unwrap() error { return e.Err }

// Status returns the agent's status.
func (l *Local) Status(ctx context.Context) (api.AgentStatus, error) {
	var st api.AgentStatus
	err := l.call(ctx, http.MethodGet, api.PathAgentStatus, &st)
	return st, err
}

// BookmarkOptions say which point Bookmark asks for.
type BookmarkOptions struct {
	// App: app-consistent (scripts and a freeze); Group: a group point,
	// on the group's coordinator; Wait: answer once the server lists it.
	App, Group, Wait bool
}

// Bookmark asks the agent for a point now.
func (l *Local) Bookmark(ctx context.Context, o BookmarkOptions) (api.AgentPoint, error) {
	q := url.Values{}
	if o.App {
		q.Set("app", "1")
	}
	if o.Group {
		q.Set("group", "1")
	}
	if o.Wait {
		q.Set("wait", "1")
	}
	var p api.AgentPoint
	err := l.call(ctx, http.MethodPost, api.PathAgentBookmark+"?"+q.Encode(), &p)
	return p, err
}

// call sends one request; an error answer (api.AgentError) becomes an
// error with its hint, a socket nobody listens on a *NoAgentError.
func (l *Local) call(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return &NoAgentError{Socket: l.sock, Err: err}
		}
		return fmt.Errorf("ask the agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.AgentError
		json.NewDecoder(resp.Body).Decode(&e)
		return api.WithHint(errors.New(e.Error), e.Hint)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
