package agent

import (
	"context"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// listingServer lists every point at once.
type listingServer struct{ fakeServer }

func (listingServer) Point(_ context.Context, id string) (api.PointStatus, error) {
	return api.PointStatus{ID: id, Listed: true}, nil
}

// bookmarkServer is the configuration server's side: it records the
// reports.
type bookmarkServer struct {
	results chan api.BookmarkResult
}

func (bookmarkServer) SyncGroup(context.Context, string) (api.GroupAssignment, error) {
	return api.GroupAssignment{}, nil
}
func (bookmarkServer) GroupResult(context.Context, api.GroupPointResult) error { return nil }
func (s bookmarkServer) BookmarkResult(_ context.Context, r api.BookmarkResult) error {
	s.results <- r
	return nil
}

// TestServerBookmark: a bookmark the server hands over at a sync is
// taken once, however often the sync repeats it, and its point is
// reported with the request's id once the server lists it.
func TestServerBookmark(t *testing.T) {
	ta := newTestAgentWith(t, 1, func(c *Config) { c.Client = listingServer{} })
	ta.round(t)
	srv := bookmarkServer{results: make(chan api.BookmarkResult, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := &api.ServerBookmark{ID: "r1"}
	ta.serverBookmark(ctx, srv, req)
	var pr *pointRequest
	select {
	case pr = <-ta.pointReq:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's bookmark asked the loop for no point")
	}
	// The next syncs hand the same request over again: no second point.
	ta.serverBookmark(ctx, srv, req)
	ta.serverBookmark(ctx, srv, &api.ServerBookmark{})
	ta.waiting = append(ta.waiting, pr)
	var res api.BookmarkResult
	for i := 0; ; i++ {
		ta.round(t)
		select {
		case res = <-srv.results:
		case <-time.After(50 * time.Millisecond):
			if i < 10 {
				continue
			}
			t.Fatal("no bookmark reported after 10 rounds")
		}
		break
	}
	if !res.OK || res.Request != "r1" || res.Point == nil || res.Point.ID == "" || !res.Listed || res.Machine != "m1" {
		t.Fatalf("reported %+v", res)
	}
	select {
	case <-ta.pointReq:
		t.Fatal("the same request was taken twice")
	case <-time.After(100 * time.Millisecond):
	}
}
