package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
)

type fakeStatus struct {
	mu sync.Mutex
	st api.AgentStatus
}

func (f *fakeStatus) Status() api.AgentStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeStatus) set(done int64, state api.AgentDiskState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := api.AgentDiskStatus{Name: "sdb", State: state}
	if state != api.AgentStateProtected {
		d.Sync = &api.AgentSyncStatus{Started: time.Now(), TotalBytes: 100 << 20, DoneBytes: done}
	}
	f.st = api.AgentStatus{Disks: []api.AgentDiskStatus{d}}
}

func TestLogProgressPercentRateETAAndEnd(t *testing.T) {
	f := &fakeStatus{}
	f.set(0, api.AgentStateInitialSync)
	var out cmdlinetest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		logProgress(ctx, f, slog.New(slog.NewTextHandler(&out, nil)), 50*time.Millisecond)
		close(done)
	}()
	time.Sleep(75 * time.Millisecond)
	f.set(50<<20, api.AgentStateInitialSync)
	time.Sleep(50 * time.Millisecond)
	f.set(100<<20, api.AgentStateProtected)
	time.Sleep(60 * time.Millisecond)
	cancel()
	<-done
	log := out.String()
	for _, want := range []string{"sync progress", "percent=50.0", "eta=", "rate=", "sync finished", "state=protected"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(log, "sync finished") != 1 {
		t.Fatalf("want one end line:\n%s", log)
	}
}
