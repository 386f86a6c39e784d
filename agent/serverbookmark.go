package agent

import (
	"context"
	"errors"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// serverBookmarkTimeout bounds a bookmark the server asked for, from its
// pickup to its report: under the server's default wait (2 min), so the
// operator gets the agent's own reason rather than a timeout.
const serverBookmarkTimeout = 100 * time.Second

// bookmarkReporter is the configuration server's side of a bookmark an
// operator asked for through it (client.AgentConfig).
type bookmarkReporter interface {
	BookmarkResult(ctx context.Context, r api.BookmarkResult) error
}

// serverBookmark takes the point an operator asked for through the
// server (lifeboat bookmark, the console), once per request, and reports
// its outcome: the same point agentctl bookmark --wait takes. srv is
// where the request came from (the sync of the group or of the process
// server).
func (a *Agent) serverBookmark(ctx context.Context, srv GroupServer, req *api.ServerBookmark) {
	if req == nil || req.ID == "" {
		return
	}
	a.mu.Lock()
	if a.srvBookmark == req.ID {
		a.mu.Unlock()
		return
	}
	a.srvBookmark = req.ID
	a.mu.Unlock()
	rep, ok := srv.(bookmarkReporter)
	if !ok {
		a.log.Warn("bookmark asked through the server: cannot report to it", "request", req.ID)
		return
	}
	a.log.Info("bookmark asked through the server", "request", req.ID, "app", req.App)
	go func() {
		res := a.takeServerBookmark(ctx, req)
		for try := 0; try < 3 && ctx.Err() == nil; try++ {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := rep.BookmarkResult(rctx, res)
			cancel()
			if err == nil {
				return
			}
			a.log.Warn("report a bookmark to the server", "request", req.ID, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
}

func (a *Agent) takeServerBookmark(ctx context.Context, req *api.ServerBookmark) api.BookmarkResult {
	ctx, cancel := context.WithTimeout(ctx, serverBookmarkTimeout)
	defer cancel()
	res := api.BookmarkResult{Request: req.ID, Machine: a.cfg.Machine}
	p, err := a.Bookmark(ctx, req.App)
	if err != nil {
		res.Error, res.Hint = err.Error(), api.Hint(err)
		if errors.Is(err, context.DeadlineExceeded) && !a.allProtected() {
			res.Error = "no point yet: a disk is still in initial sync or resync"
			res.Hint = "'agentctl status' on the machine shows the progress; ask again once every disk is protected"
		}
		if res.Hint == "" {
			res.Hint = "see 'agentctl status' on the machine"
		}
		return res
	}
	res.OK, res.Point = true, &p
	if err := a.WaitListed(ctx, p.ID); err != nil {
		res.Hint = "the point is in the agent's journal but the server has not listed it yet: " + err.Error()
		return res
	}
	res.Listed = true
	return res
}
