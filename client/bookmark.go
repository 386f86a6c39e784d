package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Bookmark asks the machine's agent, through the server, for a point now
// and returns its outcome, waiting at most wait (0: the server's
// default).
func (a *Admin) Bookmark(ctx context.Context, machine string, req api.BookmarkRequest, wait string) (api.BookmarkResult, error) {
	var r api.BookmarkResult
	u := a.base + "/v1/machines/" + escape(machine) + "/bookmark"
	if wait != "" {
		u += "?wait=" + url.QueryEscape(wait)
	}
	err := doJSON(long(ctx), a.hc, http.MethodPost, u, req, &r)
	return r, err
}

// BookmarkResult reports the outcome of a bookmark the server asked for.
func (c *AgentConfig) BookmarkResult(ctx context.Context, r api.BookmarkResult) error {
	return doJSON(ctx, c.hc, http.MethodPost, c.base+api.PathAgentBookmarkResult, r, nil)
}
