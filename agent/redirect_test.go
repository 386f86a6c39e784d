package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// declaringServer records the disk sets declared to it.
type declaringServer struct {
	fakeServer
	mu    sync.Mutex
	decls [][]api.DiskSpec
}

func (s *declaringServer) SetMachine(_ context.Context, d []api.DiskSpec) (api.Machine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decls = append(s.decls, d)
	return api.Machine{}, nil
}

// TestMoveDeclaresDisksToNewServer: after a move the agent declares its
// disk set to the new process server, which checks segment headers
// against it (issue 18, items 3 and 4).
func TestMoveDeclaresDisksToNewServer(t *testing.T) {
	ta := newTestAgent(t, 1)
	srv := &declaringServer{}
	ta.cfg.Client = srv
	var redirected []string
	ta.cfg.Redirect = func(addr string) error { redirected = append(redirected, addr); return nil }
	ta.followProcessServer("ps2:9443")
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.decls)
		var d []api.DiskSpec
		if n > 0 {
			d = srv.decls[0]
		}
		srv.mu.Unlock()
		if n > 0 {
			if len(d) != 1 || d[0].Size != testDiskSize {
				t.Fatalf("declared %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no disk set declared to the new process server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(redirected) != 1 || ta.processServer() != "ps2:9443" {
		t.Errorf("redirected %v, server %q", redirected, ta.processServer())
	}
}
