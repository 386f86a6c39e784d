package configsrv

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// DefaultBookmarkWait bounds how long POST /v1/machines/{m}/bookmark
// waits for the agent's outcome.
const DefaultBookmarkWait = 2 * time.Minute

// bookmarks are the operators' pending bookmark requests, one per
// machine: the agent picks its machine's up at its next sync (the same
// PUT /v1/agent/group every agent makes) and reports the outcome to
// POST /v1/agent/bookmark/result. They live in memory: a request the
// server forgets in a restart is answered 504 to the operator and never
// taken.
type bookmarks struct {
	mu      sync.Mutex
	pending map[string]*pendingBookmark // machine → request
}

type pendingBookmark struct {
	req    api.ServerBookmark
	asked  time.Time
	picked *time.Time
	done   chan api.BookmarkResult // buffered 1
}

// deliver returns the machine's pending request for its agent's sync
// and notes that it was picked up.
func (b *bookmarks) deliver(m string) *api.ServerBookmark {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending[m]
	if p == nil {
		return nil
	}
	if p.picked == nil {
		now := time.Now().UTC()
		p.picked = &now
	}
	r := p.req
	return &r
}

// RequestBookmark handles POST /v1/machines/{m}/bookmark: the machine's
// agent takes a point at its next sync; the answer is its outcome.
// A second request for the same machine while one waits is refused.
func (s *Groups) RequestBookmark(w http.ResponseWriter, r *http.Request) error {
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "'lifeboat machines' lists the machines")
	}
	names, err := s.machine.Names(r.Context())
	if err != nil {
		return err
	}
	if !slices.Contains(names, m) {
		return httpapi.Errorf(http.StatusNotFound, "unknown machine "+strconv.Quote(m), "'lifeboat machines' lists the machines")
	}
	wait := DefaultBookmarkWait
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait <= 0 {
			return httpapi.Errorf(http.StatusBadRequest, "bad wait "+strconv.Quote(v), "give a duration such as 2m")
		}
	}
	var req api.BookmarkRequest
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
			return err
		}
	}
	var id [8]byte
	rand.Read(id[:])
	p := &pendingBookmark{req: api.ServerBookmark{ID: hex.EncodeToString(id[:]), App: req.App}, asked: time.Now().UTC(),
		done: make(chan api.BookmarkResult, 1)}
	b := &s.bm
	b.mu.Lock()
	if b.pending == nil {
		b.pending = map[string]*pendingBookmark{}
	}
	if old := b.pending[m]; old != nil {
		b.mu.Unlock()
		return httpapi.Errorf(http.StatusConflict, "a bookmark of "+m+" asked at "+old.asked.Format(time.RFC3339)+" is still waiting for its agent",
			"wait for its outcome, then ask again")
	}
	b.pending[m] = p
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.pending[m] == p {
			delete(b.pending, m)
		}
		b.mu.Unlock()
	}()
	s.log.Info("bookmark asked", httpapi.LogComponent, "config", "machine", m, "request", p.req.ID, "app", req.App)
	select {
	case res := <-p.done:
		res.Asked = p.asked
		b.mu.Lock()
		res.Picked = p.picked
		b.mu.Unlock()
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	case <-time.After(wait):
		b.mu.Lock()
		picked := p.picked
		b.mu.Unlock()
		if picked == nil {
			return httpapi.Errorf(http.StatusGatewayTimeout, "the agent of "+m+" did not ask this server for requests within "+wait.String(),
				"check that the agent of "+m+" runs and reaches this server ('lifeboat machines' shows its last contact); 'agentctl bookmark' on the machine takes a point without the server")
		}
		return httpapi.Errorf(http.StatusGatewayTimeout, "the agent of "+m+" picked the request up at "+picked.Format(time.RFC3339)+" but reported no point within "+wait.String(),
			"see 'agentctl status' on "+m+": a disk may still be in initial sync, or the point not yet sent")
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

// AgentBookmarkResult handles POST /v1/agent/bookmark/result: the
// outcome of a ServerBookmark, from the agent of the machine it asked.
func (s *Groups) AgentBookmarkResult(w http.ResponseWriter, r *http.Request) error {
	m, err := s.agentMachine(r)
	if err != nil {
		return err
	}
	var res api.BookmarkResult
	if err := httpapi.DecodeJSON(w, r, 16<<10, &res); err != nil {
		return err
	}
	res.Machine = m
	res.Done = time.Now().UTC()
	log := s.log.With(httpapi.LogComponent, "config", "machine", m, "request", res.Request)
	if res.OK && res.Point != nil {
		log.Info("bookmark taken", httpapi.LogPoint, res.Point.ID, "listed", res.Listed)
	} else {
		log.Warn("bookmark failed", httpapi.LogErr, res.Error)
	}
	b := &s.bm
	b.mu.Lock()
	p := b.pending[m]
	if p == nil || p.req.ID != res.Request {
		b.mu.Unlock()
		// Nobody waits any more (timed out, or a server restart):
		// the point, if any, is listed all the same.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	delete(b.pending, m)
	b.mu.Unlock()
	p.done <- res
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// BookmarkStatus handles GET /v1/machines/{m}/bookmark: the progress of
// the bookmark waiting for the machine's agent.
func (s *Groups) BookmarkStatus(w http.ResponseWriter, r *http.Request) error {
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "'lifeboat machines' lists the machines")
	}
	st := api.BookmarkStatus{Machine: m}
	b := &s.bm
	b.mu.Lock()
	if p := b.pending[m]; p != nil {
		asked := p.asked
		st.Pending, st.Request, st.App, st.Asked, st.Picked = true, p.req.ID, p.req.App, &asked, p.picked
	}
	b.mu.Unlock()
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
