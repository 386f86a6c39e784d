package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Bandwidth returns the agent's upload limit.
func (l *Local) Bandwidth(ctx context.Context) (api.AgentBandwidth, error) {
	var b api.AgentBandwidth
	err := l.call(ctx, http.MethodGet, api.PathAgentBandwidth, &b)
	return b, err
}

// SetBandwidth sets a limit (bytes per second, 0: none) that replaces the
// configured ones for d (0: until ResetBandwidth or the agent restarts).
func (l *Local) SetBandwidth(ctx context.Context, limit int64, d time.Duration) (api.AgentBandwidth, error) {
	var b api.AgentBandwidth
	err := l.send(ctx, http.MethodPut, api.PathAgentBandwidth, api.AgentBandwidthRequest{Limit: limit, ForSeconds: d.Seconds()}, &b)
	return b, err
}

// ResetBandwidth returns the agent to its configured limit and schedule.
func (l *Local) ResetBandwidth(ctx context.Context) (api.AgentBandwidth, error) {
	var b api.AgentBandwidth
	err := l.call(ctx, http.MethodDelete, api.PathAgentBandwidth, &b)
	return b, err
}

// send is call with a JSON body.
func (l *Local) send(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
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
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error == "" {
			return api.WithHint(fmt.Errorf("the agent answered %s", resp.Status), "an agent older than this agentctl has no such request: upgrade the agent")
		}
		return api.WithHint(errors.New(e.Error), e.Hint)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
