package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// cacheFullServer answers every segment 507, as a process server whose
// cache disk is full.
type cacheFullServer struct{ fakeServer }

func (cacheFullServer) PutSegment(context.Context, string, uint64, io.Reader, int64) (api.SegmentAck, error) {
	return api.SegmentAck{}, &api.StatusError{Status: http.StatusInsufficientStorage, Message: "process server cache disk full",
		Remedy: "free space in the server's data directory (cache/)"}
}

// A full cache on the server is shown with the server's remedy (free its
// cache), never with the advice to reinstall the agent's state, which
// would resync the disk for nothing.
func TestCacheFullRemedy(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "sda")
	if err := os.WriteFile(disk, make([]byte, testDiskSize), 0o600); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTracker(&trace{})
	a, err := New(Config{Machine: "m1", Disks: []string{disk}, StateDir: filepath.Join(dir, "state"), Client: cacheFullServer{},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		platform: &fakePlatform{tr: ft, dirtySet: map[string]bool{}}, freezer: &fakeFreezer{trace: &trace{}}})
	if err != nil {
		t.Fatal(err)
	}
	a.consumerWG.Add(1)
	go a.consume()
	// stop says the refused segment was not sent: expected here.
	t.Cleanup(func() { _ = a.stop() })
	d := a.disks[0]
	if err := d.w.WriteData(0, 1, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := d.w.Rotate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	d.up.Run(ctx)
	cancel()
	var found bool
	for _, p := range a.Status().Problems {
		if p.Code != ProblemSegmentRefused {
			continue
		}
		found = true
		if !strings.Contains(p.Remedy, "cache") || strings.Contains(p.Remedy, "reinstall") {
			t.Errorf("remedy for a full cache: %q; want the server's cache freed, not a reinstall", p.Remedy)
		}
	}
	if !found {
		t.Fatalf("no %s problem after 507 answers: %+v", ProblemSegmentRefused, a.Status().Problems)
	}
}
