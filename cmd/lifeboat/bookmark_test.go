package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestBookmarkThroughServer: lifeboat bookmark refuses an unknown
// machine, says what to check when no agent picks the request up, and
// prints the agent's own reason and remedy when it cannot take the point.
// (The point that appears is seen in TestConsoleInABrowser.)
func TestBookmarkThroughServer(t *testing.T) {
	dir := servertest.Init(t)
	srv := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, srv, dir, "web1")
	if _, errOut, err := run(t, nil, "--data", dir, "bookmark", "nosuch"); err == nil || !strings.Contains(errOut, `unknown machine "nosuch"`) {
		t.Fatalf("unknown machine: %v\n%s", err, errOut)
	}
	_, errOut, err := run(t, nil, "--data", dir, "bookmark", "web1", "--wait", "1s")
	if err == nil || !strings.Contains(errOut, "did not ask this server for requests within 1s") || !strings.Contains(errOut, "agentctl bookmark") {
		t.Fatalf("no agent: %v\n%s", err, errOut)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := client.NewAgentConfig(srv.APIAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	agentErr := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			asg, err := cfg.SyncGroup(ctx, "")
			if err != nil {
				agentErr <- err
				return
			}
			if b := asg.Bookmark; b != nil {
				if !b.App {
					agentErr <- errors.New("the request reached the agent without --app-consistent")
					return
				}
				agentErr <- cfg.BookmarkResult(ctx, api.BookmarkResult{Request: b.ID, Error: "no point yet: a disk is still in initial sync or resync", Hint: "ask again once every disk is protected"})
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	_, errOut, err = run(t, nil, "--data", dir, "bookmark", "web1", "--app-consistent")
	if err == nil || !strings.Contains(errOut, "bookmark of web1 failed: no point yet") || !strings.Contains(errOut, "ask again once every disk is protected") {
		t.Fatalf("agent's failure: %v\n%s", err, errOut)
	}
	if err := <-agentErr; err != nil {
		t.Fatal(err)
	}
}
