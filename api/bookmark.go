package api

import "time"

// Paths of a bookmark asked through the server: the operator asks the
// configuration role, the machine's agent picks the request up at its
// next sync (PUT /v1/agent/group) and reports the outcome.
const (
	// PathBookmark asks one machine's agent for a point now (admin,
	// POST, ?wait=DURATION); the answer is its BookmarkResult.
	PathBookmark = "/v1/machines/{m}/bookmark"
	// PathAgentBookmarkResult is where an agent, with its machine
	// certificate, reports the outcome of a ServerBookmark.
	PathAgentBookmarkResult = "/v1/agent/bookmark/result"
)

// BookmarkRequest is the body of POST /v1/machines/{m}/bookmark.
type BookmarkRequest struct {
	// App asks for an app-consistent point (scripts and a freeze).
	App bool `json:"app,omitempty"`
}

// ServerBookmark is a bookmark an operator asked for and the agent has
// not reported yet (GroupAssignment.Bookmark).
type ServerBookmark struct {
	ID  string `json:"id"`
	App bool   `json:"app,omitempty"`
}

// BookmarkResult is the outcome of a bookmark asked through the server:
// the body of POST /v1/agent/bookmark/result and the answer of
// POST /v1/machines/{m}/bookmark.
type BookmarkResult struct {
	// Request is the ServerBookmark's id.
	Request string `json:"request"`
	Machine string `json:"machine"`
	OK      bool   `json:"ok"`
	// Point is the point cut (OK); Listed is true once the server lists
	// it.
	Point  *AgentPoint `json:"point,omitempty"`
	Listed bool        `json:"listed"`
	Error  string      `json:"error,omitempty"`
	Hint   string      `json:"hint,omitempty"`
	// Asked is when the operator asked; Picked when the agent picked the
	// request up; Done when it reported.
	Asked  time.Time  `json:"asked"`
	Picked *time.Time `json:"picked,omitempty"`
	Done   time.Time  `json:"done"`
}

// BookmarkStatus answers GET /v1/machines/{m}/bookmark: the bookmark of
// the machine waiting for its agent, if any (Pending).
type BookmarkStatus struct {
	Machine string `json:"machine"`
	Pending bool   `json:"pending"`
	Request string `json:"request,omitempty"`
	App     bool   `json:"app,omitempty"`
	// Asked is when the operator asked; Picked when the agent picked the
	// request up (nil: not yet).
	Asked  *time.Time `json:"asked,omitempty"`
	Picked *time.Time `json:"picked,omitempty"`
}
