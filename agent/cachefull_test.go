package agent

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

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
	// stop says the refused segment was not sent: expected here.
	a, d := startRefusedAgent(t, cacheFullServer{}, 0, false)
	sendSegment(t, d, 1)
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
