package configsrv

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
	"github.com/lifeboat-dr/lifeboat/store"
)

// GroupsDir holds one JSON file per replication group.
const GroupsDir = "groups"

// DefaultGroupPointWait bounds how long POST /v1/groups/{g}/point waits
// for the coordinator's outcome.
const DefaultGroupPointWait = 2 * time.Minute

// groupRecord is DataDir/groups/<name>.json.
type groupRecord struct {
	Name            string    `json:"name"`
	Machines        []string  `json:"machines"`
	IntervalSeconds int64     `json:"interval_seconds"`
	Created         time.Time `json:"created"`
}

// groupsState is the in-memory side of groups: where members listen, the
// last outcome, the operator's pending requests.
type groupsState struct {
	mu      sync.Mutex
	file    sync.Mutex // group files
	members map[string]api.GroupMember
	last    map[string]*api.GroupPointResult
	pending map[string]string // group → request id
	waiters map[string]chan api.GroupPointResult
}

// GroupMachines is what the groups need of the machines: their points,
// their failover and the process server each is assigned to.
type GroupMachines interface {
	Failover
	// Points returns the listed points of a machine, oldest first.
	Points(ctx context.Context, m string) ([]api.Point, error)
	// AssignedAddr returns the process server a machine is assigned to,
	// as an agent that asked with r reaches it.
	AssignedAddr(r *http.Request, m string) (id, addr string)
}

// ClientVerifier returns the name of a client certificate chain issued by
// the server's CA (pki.CA).
type ClientVerifier interface {
	VerifyClient(chain []*x509.Certificate) (string, error)
}

// Groups owns the replication groups (DataDir/groups/): their records,
// where their members listen, their last outcomes and the operator's
// pending requests for a group point.
type Groups struct {
	dir     string
	log     *slog.Logger
	ca      ClientVerifier
	machine GroupMachines
	state   groupsState
	bm      bookmarks // bookmarks.go
}

// NewGroups returns the groups of the data directory dataDir.
func NewGroups(dataDir string, m GroupMachines, ca ClientVerifier, log *slog.Logger) *Groups {
	if log == nil {
		log = slog.Default()
	}
	return &Groups{dir: dataDir, log: log, ca: ca, machine: m, state: groupsState{members: map[string]api.GroupMember{}, last: map[string]*api.GroupPointResult{},
		pending: map[string]string{}, waiters: map[string]chan api.GroupPointResult{}}}
}

func (s *Groups) groupState() *groupsState { return &s.state }

// groupDir is DataDir/groups.
func (s *Groups) groupDir() *recdir.Dir[groupRecord] {
	return recdir.New[groupRecord](filepath.Join(s.dir, GroupsDir), api.ValidName)
}

func (s *Groups) readGroups() ([]groupRecord, error) {
	recs, err := s.groupDir().List()
	var ce *recdir.CorruptError
	if errors.As(err, &ce) {
		return nil, damagedGroup(ce)
	}
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]groupRecord, 0, len(recs))
	for _, r := range recs {
		g := r.Value
		g.Name = r.Name
		out = append(out, g)
	}
	return out, nil
}

func (s *Groups) readGroup(name string) (groupRecord, error) {
	g, err := s.groupDir().Get(name)
	var ce *recdir.CorruptError
	switch {
	case errors.Is(err, recdir.ErrNotFound):
		return g, httpapi.Errorf(http.StatusNotFound, "no group "+strconv.Quote(name), "'lifeboat group list' lists the groups")
	case errors.As(err, &ce):
		return g, damagedGroup(ce)
	case err != nil:
		return g, fmt.Errorf("read group: %w", err)
	}
	g.Name = name
	return g, nil
}

func damagedGroup(ce *recdir.CorruptError) error {
	return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "group file " + ce.File + " is damaged",
		Remedy: "fix or delete the file and create the group again", Err: ce.Err}
}

// groupOf returns the group machine m is in, if any.
func (s *Groups) groupOf(m string) (groupRecord, bool, error) {
	gs, err := s.readGroups()
	if err != nil {
		return groupRecord{}, false, err
	}
	for _, g := range gs {
		if slices.Contains(g.Machines, m) {
			return g, true, nil
		}
	}
	return groupRecord{}, false, nil
}

func groupParam(r *http.Request) (string, error) {
	g := r.PathValue("g")
	if err := api.ValidName(g); err != nil {
		return "", httpapi.Errorf(http.StatusBadRequest, "bad group name: "+err.Error(), "group names are [A-Za-z0-9._-]{1,63}")
	}
	return g, nil
}

// Create handles POST /v1/groups.
func (s *Groups) Create(w http.ResponseWriter, r *http.Request) error {
	var req api.GroupRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if err := api.ValidName(req.Name); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad group name: "+err.Error(), "group names are [A-Za-z0-9._-]{1,63}")
	}
	ms := slices.Clone(req.Machines)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	if len(ms) < 2 {
		return httpapi.Errorf(http.StatusBadRequest, "a group needs at least two machines", "give --machines a,b[,...]")
	}
	known, err := s.machine.Names(r.Context())
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := api.ValidName(m); err != nil {
			return httpapi.Errorf(http.StatusBadRequest, "bad machine name "+strconv.Quote(m)+": "+err.Error(), "'lifeboat machines' lists the machines")
		}
		if !slices.Contains(known, m) {
			return httpapi.Errorf(http.StatusNotFound, "unknown machine "+strconv.Quote(m), "register its agent first; 'lifeboat machines' lists the machines")
		}
	}
	iv := req.IntervalSeconds
	if iv == 0 {
		iv = int64(api.DefaultGroupInterval / time.Second)
	}
	gst := s.groupState()
	gst.file.Lock()
	defer gst.file.Unlock()
	gs, err := s.readGroups()
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.Name == req.Name {
			return httpapi.Errorf(http.StatusConflict, "group "+req.Name+" exists", "delete it first, or choose another name")
		}
		for _, m := range ms {
			if slices.Contains(g.Machines, m) {
				return httpapi.Errorf(http.StatusConflict, "machine "+m+" is already in group "+g.Name,
					"a machine cuts group points with one group only: delete group "+g.Name+" first")
			}
		}
	}
	g := groupRecord{Name: req.Name, Machines: ms, IntervalSeconds: iv, Created: time.Now().UTC()}
	if err := s.groupDir().Put(g.Name, g); err != nil {
		return fmt.Errorf("save group: %w", err)
	}
	s.log.With(httpapi.LogComponent, "config").Info("group created", "group", g.Name, "machines", ms, "interval_seconds", iv)
	out, err := s.groupStatus(r.Context(), g)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// List handles GET /v1/groups.
func (s *Groups) List(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.readGroups()
	if err != nil {
		return err
	}
	out := []api.Group{}
	for _, g := range gs {
		st, err := s.groupStatus(r.Context(), g)
		if err != nil {
			return err
		}
		out = append(out, st)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Get handles GET /v1/groups/{g}.
func (s *Groups) Get(w http.ResponseWriter, r *http.Request) error {
	name, err := groupParam(r)
	if err != nil {
		return err
	}
	g, err := s.readGroup(name)
	if err != nil {
		return err
	}
	st, err := s.groupStatus(r.Context(), g)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// Delete handles DELETE /v1/groups/{g}; the members' points stay.
func (s *Groups) Delete(w http.ResponseWriter, r *http.Request) error {
	name, err := groupParam(r)
	if err != nil {
		return err
	}
	gst := s.groupState()
	gst.file.Lock()
	defer gst.file.Unlock()
	g, err := s.readGroup(name)
	if err != nil {
		return err
	}
	if err := s.groupDir().Delete(name); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	st, err := s.groupStatus(r.Context(), g)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// groupStatus is what the admin API shows of a group.
func (s *Groups) groupStatus(ctx context.Context, g groupRecord) (api.Group, error) {
	out := api.Group{Name: g.Name, Machines: g.Machines, Coordinator: g.Machines[0], IntervalSeconds: g.IntervalSeconds,
		Created: g.Created, Members: []api.GroupMember{}, Problems: []string{}}
	gst := s.groupState()
	gst.mu.Lock()
	for _, m := range g.Machines {
		mem, ok := gst.members[m]
		if !ok {
			mem = api.GroupMember{Machine: m}
		}
		out.Members = append(out.Members, mem)
	}
	if r := gst.last[g.Name]; r != nil {
		c := *r
		out.LastResult = &c
	}
	gst.mu.Unlock()
	pts, err := s.groupPoints(ctx, g)
	if err != nil {
		return out, err
	}
	out.Points = len(pts)
	if len(pts) > 0 {
		out.LatestPoint = &pts[len(pts)-1]
	}
	for _, m := range out.Members {
		if m.Addr == "" {
			out.Problems = append(out.Problems, "member "+m.Machine+" has not reported a group listen address since the server started: "+
				"start its agent with --group-listen (default :20004) and make sure it reaches this server")
		}
	}
	if r := out.LastResult; r != nil && !r.OK {
		out.Problems = append(out.Problems, fmt.Sprintf("last group point failed at %s (machines %s): %s: replication goes on; "+
			"check that those agents run and reach each other's group listen address, then 'lifeboat group point %s'",
			r.Phase, strings.Join(r.Failed, ","), r.Error, g.Name))
	}
	return out, nil
}

// groupPoints lists the group points every member's part of which is
// listed, oldest first.
func (s *Groups) groupPoints(ctx context.Context, g groupRecord) ([]api.GroupPoint, error) {
	byID := map[string]*api.GroupPoint{}
	for i, m := range g.Machines {
		pts, err := s.machine.Points(ctx, m)
		if errors.Is(err, store.ErrNotFound) {
			return []api.GroupPoint{}, nil
		}
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, p := range pts {
			if p.Kind != "group" {
				continue
			}
			gp := byID[p.ID]
			if i == 0 {
				gp = &api.GroupPoint{ID: p.ID, Group: g.Name, Kind: "group", Time: p.Time, Machines: g.Machines, Materializable: true, Points: map[string]api.Point{}}
				byID[p.ID] = gp
			}
			if gp == nil {
				continue
			}
			seen[p.ID] = true
			gp.Points[m] = p
			if p.Time.Before(gp.Time) {
				gp.Time = p.Time
			}
			gp.FreezeSeconds = max(gp.FreezeSeconds, p.FreezeSeconds)
			gp.Materializable = gp.Materializable && p.Materializable
		}
		for id := range byID {
			if !seen[id] {
				delete(byID, id)
			}
		}
	}
	out := make([]api.GroupPoint, 0, len(byID))
	for _, p := range byID {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b api.GroupPoint) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// ListPoints handles GET /v1/groups/{g}/points.
func (s *Groups) ListPoints(w http.ResponseWriter, r *http.Request) error {
	name, err := groupParam(r)
	if err != nil {
		return err
	}
	g, err := s.readGroup(name)
	if err != nil {
		return err
	}
	pts, err := s.groupPoints(r.Context(), g)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, pts)
	return nil
}

// RequestPoint handles POST /v1/groups/{g}/point: the coordinator
// picks the request up at its next sync; the answer is its outcome.
func (s *Groups) RequestPoint(w http.ResponseWriter, r *http.Request) error {
	name, err := groupParam(r)
	if err != nil {
		return err
	}
	g, err := s.readGroup(name)
	if err != nil {
		return err
	}
	wait := DefaultGroupPointWait
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait <= 0 {
			return httpapi.Errorf(http.StatusBadRequest, "bad wait "+strconv.Quote(v), "give a duration such as 2m")
		}
	}
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ch := make(chan api.GroupPointResult, 1)
	gst := s.groupState()
	gst.mu.Lock()
	gst.pending[g.Name] = id
	gst.waiters[id] = ch
	gst.mu.Unlock()
	defer func() {
		gst.mu.Lock()
		delete(gst.waiters, id)
		if gst.pending[g.Name] == id {
			delete(gst.pending, g.Name)
		}
		gst.mu.Unlock()
	}()
	select {
	case res := <-ch:
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	case <-time.After(wait):
		return httpapi.Errorf(http.StatusGatewayTimeout, "the coordinator "+g.Machines[0]+" did not report a group point within "+wait.String(),
			"check that the agent of "+g.Machines[0]+" runs with --group-listen and reaches this server ('lifeboat group show "+g.Name+"')")
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

// Failover handles POST /v1/groups/{g}/failover: every member at the
// same group point, into Out/<machine>/.
func (s *Groups) Failover(w http.ResponseWriter, r *http.Request) error {
	name, err := groupParam(r)
	if err != nil {
		return err
	}
	g, err := s.readGroup(name)
	if err != nil {
		return err
	}
	var req api.GroupFailoverRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if req.Out == "" || !filepath.IsAbs(req.Out) {
		return httpapi.Errorf(http.StatusBadRequest, "out must be an absolute directory", "give --out DIR: a directory on the server host")
	}
	pts, err := s.groupPoints(r.Context(), g)
	if err != nil {
		return err
	}
	var pt *api.GroupPoint
	for i := len(pts) - 1; i >= 0; i-- {
		if (req.Point == api.PointLatest && pts[i].Materializable) || pts[i].ID == req.Point {
			pt = &pts[i]
			break
		}
	}
	if pt == nil {
		return httpapi.Errorf(http.StatusNotFound, "no group point "+strconv.Quote(req.Point)+" of group "+g.Name,
			"'lifeboat points --group "+g.Name+"' lists the group points that every member holds")
	}
	if !pt.Materializable {
		return httpapi.Errorf(http.StatusConflict, "group point "+pt.ID+" is no longer materializable on every member",
			"choose a newer one: 'lifeboat points --group "+g.Name+"'")
	}
	res := api.GroupFailoverResult{Group: g.Name, Point: *pt, Machines: []api.FailoverResult{}}
	for _, m := range g.Machines {
		fr, err := s.machine.Failover(r.Context(), m, api.FailoverRequest{Point: pt.ID, Test: req.Test, Out: filepath.Join(req.Out, m), Check: req.Check})
		if err != nil {
			var e *httpapi.Error
			if errors.As(err, &e) {
				e.Msg = "machine " + m + ": " + e.Msg
				return e
			}
			return fmt.Errorf("machine %s: %w", m, err)
		}
		res.Machines = append(res.Machines, fr)
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// agentMachine returns the machine of an agent's request to the
// configuration role: its certificate's name, verified against the CA.
func (s *Groups) agentMachine(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no client certificate", "the agent presents its machine certificate: register it first")
	}
	cn, err := s.ca.VerifyClient(r.TLS.PeerCertificates)
	if err != nil {
		return "", &httpapi.Error{Status: http.StatusForbidden, Msg: "client certificate not issued by this server's CA", Remedy: "register the agent with this server", Err: err}
	}
	if cn == api.AdminName || api.ValidName(cn) != nil {
		return "", httpapi.Errorf(http.StatusForbidden, "certificate names no machine", "use the agent's machine certificate")
	}
	return cn, nil
}

// SyncAgent handles PUT /v1/agent/group.
func (s *Groups) SyncAgent(w http.ResponseWriter, r *http.Request) error {
	m, err := s.agentMachine(r)
	if err != nil {
		return err
	}
	var req api.GroupReport
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	addr := req.Addr
	if addr != "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return httpapi.Errorf(http.StatusBadRequest, "bad group listen address "+strconv.Quote(addr), "give --group-listen HOST:PORT")
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			// Listening on every address: the others reach it where
			// this server saw it come from.
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				h = r.RemoteAddr
			}
			addr = net.JoinHostPort(h, port)
		}
	}
	now := time.Now().UTC()
	gst := s.groupState()
	gst.mu.Lock()
	gst.members[m] = api.GroupMember{Machine: m, Addr: addr, Seen: &now}
	gst.mu.Unlock()
	g, ok, err := s.groupOf(m)
	if err != nil {
		return err
	}
	out := api.GroupAssignment{Machine: m, Machines: []string{}, Members: []api.GroupMember{}}
	if ok {
		out.Group, out.Machines, out.Coordinator, out.IntervalSeconds = g.Name, g.Machines, g.Machines[0], g.IntervalSeconds
		gst.mu.Lock()
		for _, mm := range g.Machines {
			mem, ok := gst.members[mm]
			if !ok {
				mem = api.GroupMember{Machine: mm}
			}
			out.Members = append(out.Members, mem)
		}
		if m == out.Coordinator {
			out.Request = gst.pending[g.Name]
		}
		gst.mu.Unlock()
	}
	_, out.ProcessServer = s.machine.AssignedAddr(r, m)
	out.Bookmark = s.bm.deliver(m)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// AgentResult handles POST /v1/agent/group/result, from the group's
// coordinator only.
func (s *Groups) AgentResult(w http.ResponseWriter, r *http.Request) error {
	m, err := s.agentMachine(r)
	if err != nil {
		return err
	}
	var res api.GroupPointResult
	if err := httpapi.DecodeJSON(w, r, 64<<10, &res); err != nil {
		return err
	}
	g, ok, err := s.groupOf(m)
	if err != nil {
		return err
	}
	if !ok || g.Name != res.Group || g.Machines[0] != m {
		return httpapi.Errorf(http.StatusForbidden, "machine "+m+" does not coordinate group "+strconv.Quote(res.Group),
			"only a group's first machine by name reports its points")
	}
	log := s.log.With(httpapi.LogComponent, "config", "group", g.Name, httpapi.LogPoint, res.ID)
	if res.OK {
		log.Info("group point cut", "freeze_seconds", res.FreezeSeconds)
	} else {
		log.Warn("group point failed", "phase", res.Phase, "failed", res.Failed, httpapi.LogErr, res.Error)
	}
	gst := s.groupState()
	gst.mu.Lock()
	c := res
	gst.last[g.Name] = &c
	if res.Request != "" {
		if ch := gst.waiters[res.Request]; ch != nil {
			ch <- res
			delete(gst.waiters, res.Request)
		}
		if gst.pending[g.Name] == res.Request {
			delete(gst.pending, g.Name)
		}
	}
	gst.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
