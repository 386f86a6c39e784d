package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// configHandler routes the configuration role: registration and the admin
// API.
func (s *Server) configHandler() http.Handler {
	log := s.cfg.Logger.With(httpapi.LogComponent, "config")
	mux := http.NewServeMux()
	mux.Handle("POST "+api.PathRegister, httpapi.Handle(log, s.registration.Register))
	mux.Handle("PUT "+api.PathAgentGroup, httpapi.Handle(log, s.groups.SyncAgent))
	mux.Handle("POST "+api.PathAgentGroupResult, httpapi.Handle(log, s.groups.AgentResult))
	mux.Handle("POST "+api.PathServerJoin, httpapi.Handle(log, s.joinServer))
	mux.Handle("PUT "+api.PathServerHeartbeat, httpapi.Handle(log, s.serverHeartbeat))
	admin := func(pattern string, h httpapi.HandlerFunc) {
		mux.Handle(pattern, httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
			if err := s.checkAdmin(r); err != nil {
				return err
			}
			return h(w, r)
		}))
	}
	admin("POST "+api.PathTokens, s.tokens.Create)
	admin("GET "+api.PathTokens, s.tokens.List)
	admin("DELETE "+api.PathToken, s.tokens.Revoke)
	admin("GET "+api.PathMachines, s.listMachines)
	admin("GET "+api.PathPoints, s.listPoints)
	admin("POST "+api.PathFailover, s.failovers.Failover)
	admin("POST "+api.PathCommit, s.failovers.Commit)
	admin("GET "+api.PathPolicy, s.policies.Get)
	admin("PUT "+api.PathPolicy, s.policies.Put)
	admin("POST "+api.PathPrune, s.policies.PruneNow)
	admin("GET "+api.PathPlans, s.plans.List)
	admin("POST "+api.PathPlans, s.plans.Create)
	admin("GET "+api.PathPlan, s.plans.Get)
	admin("DELETE "+api.PathPlan, s.plans.Delete)
	admin("POST "+api.PathPlanTest, s.plans.Test)
	admin("POST "+api.PathPlanRun, s.plans.Run)
	admin("GET "+api.PathGroups, s.groups.List)
	admin("POST "+api.PathGroups, s.groups.Create)
	admin("GET "+api.PathGroup, s.groups.Get)
	admin("DELETE "+api.PathGroup, s.groups.Delete)
	admin("GET "+api.PathGroupPoints, s.groups.ListPoints)
	admin("POST "+api.PathGroupPoint, s.groups.RequestPoint)
	admin("POST "+api.PathGroupFailover, s.groups.Failover)
	admin("POST "+api.PathFailback, s.failback.Start)
	admin("GET "+api.PathFailback, s.failback.Get)
	admin("DELETE "+api.PathFailback, s.failback.Cancel)
	admin("POST "+api.PathFailbackComplete, s.failback.Complete)
	admin("GET "+api.PathAlerts, s.alerts.List)
	admin("GET "+api.PathServers, s.listServers)
	admin("POST "+api.PathMove, s.moveMachine)
	admin("GET "+api.PathServer, s.serverInfo)
	admin("GET "+api.PathUsers, s.console.ListUsers)
	admin("POST "+api.PathUsers, s.console.AddUser)
	admin("DELETE "+api.PathUser, s.console.RemoveUser)
	admin("GET "+api.PathAudit, s.console.ListAudit)
	mux.Handle("/ui/", s.console.Handler()) // login and roles of its own: docs/console.md
	mux.Handle("/", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "see docs/protocol.md for the configuration role's endpoints")
	}))
	return mux
}

const adminHint = "the admin API needs the administrator's certificate: run lifeboat with --data DIR on the server host, or with --cert DIR/admin.crt --key DIR/admin.key --ca DIR/ca.crt"

// checkAdmin admits only the administrator's certificate, issued by the
// server's CA.
func (s *Server) checkAdmin(r *http.Request) error {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return httpapi.Errorf(http.StatusUnauthorized, "no client certificate", adminHint)
	}
	cn, err := s.ca.VerifyClient(r.TLS.PeerCertificates)
	if err != nil {
		return &httpapi.Error{Status: http.StatusForbidden, Msg: "client certificate not issued by this server's CA", Remedy: adminHint, Err: err}
	}
	if cn != api.AdminName {
		return httpapi.Errorf(http.StatusForbidden, fmt.Sprintf("certificate of machine %q cannot use the admin API", cn), adminHint)
	}
	return nil
}

// processServerFor returns the process server address to give an agent
// that registered through r.
func (s *Server) processServerFor(r *http.Request) (string, error) {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise, nil
	}
	if s.procAddr == nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "this server runs no process role",
			"run lifeboat-server with --roles including process, or give --advertise HOST:PORT of a process server")
	}
	host, port, err := net.SplitHostPort(s.procAddr.String())
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		// Listening on every address: the agent can reach the process
		// role where it reached this one.
		h, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			h = r.Host
		}
		host = h
	}
	return net.JoinHostPort(host, port), nil
}

// listMachines handles GET /v1/machines.
func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) error {
	names, err := s.machineNames(r.Context())
	if err != nil {
		return err
	}
	s.alerts.Evaluate(r.Context())
	out := make([]api.Machine, 0, len(names))
	for _, n := range names {
		m, err := s.machineStatus(r.Context(), n)
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// machineNames lists, sorted, every machine registered or with data.
func (s *Server) machineNames(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	s.machines.Each(func(n string, _ *machines.Record) { set[n] = true })
	ms, err := s.store.Machines(ctx)
	if err != nil {
		return nil, fmt.Errorf("target storage: %w", err)
	}
	for _, n := range ms {
		set[n] = true
	}
	if ents, err := os.ReadDir(filepath.Join(s.dir, CacheDir)); err == nil {
		for _, e := range ents {
			if e.IsDir() && api.ValidName(e.Name()) == nil {
				set[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		if api.ValidName(n) == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// machineStatus returns what the admin API shows of a machine.
func (s *Server) machineStatus(ctx context.Context, name string) (api.Machine, error) {
	rec, _ := s.machines.Get(name)
	m := api.Machine{Name: name, Registered: rec.Registered, Disks: []api.DiskState{}}
	if !rec.LastSeen.IsZero() {
		t := rec.LastSeen
		m.LastSeen = &t
	}
	disks, err := s.machineDisks(ctx, name)
	if err != nil {
		return m, err
	}
	for _, d := range disks {
		st, err := s.diskStatus(ctx, name, d)
		if err != nil {
			return m, err
		}
		m.Disks = append(m.Disks, st)
	}
	pts, err := s.points(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return m, err
	}
	m.Points = len(pts)
	if len(pts) > 0 {
		m.LatestPoint = &pts[len(pts)-1]
	}
	m.State = rec.StateName()
	m.Failover = rec.Failover
	m.Committed = rec.Committed
	m.LastPrune = rec.LastPrune
	m.Problems = []string{}
	if fb := s.failback.Current(name); fb != nil {
		m.Failback = fb
		m.State = fb.State
		if fb.Phase == api.FailbackFailed {
			m.Problems = append(m.Problems, "failback failed: "+fb.Error+" ("+fb.Hint+")")
		}
	}
	m.Alerts = s.alerts.Active(name)
	if p := rec.LastPrune; p != nil && p.Error != "" {
		m.Problems = append(m.Problems, "prune failed: "+p.Error)
	}
	for _, d := range disks {
		if msg := s.proc.ApplyProblem(name, d); msg != "" {
			m.Problems = append(m.Problems, "apply of disk "+d+" failing: "+msg)
		}
	}
	if s.cfg.Roles.Config {
		s.assignmentStatus(&m, rec)
	}
	return m, nil
}

// points returns the listed points of a machine, oldest first.
func (s *Server) points(ctx context.Context, machine string) ([]api.Point, error) {
	ps, err := s.store.Points(ctx, machine)
	if err != nil {
		return nil, err
	}
	out := make([]api.Point, len(ps))
	for i, p := range ps {
		out[i] = apiPoint(p)
	}
	return out, nil
}

func apiPoint(p store.Point) api.Point {
	disks := p.Disks
	if disks == nil {
		disks = []string{}
	}
	return api.Point{ID: p.ID, Time: p.Time.UTC(), Kind: p.Kind, Gen: p.Gen, Disks: disks,
		FreezeNS: int64(p.Freeze), FreezeSeconds: p.Freeze.Seconds(), Materializable: p.Materializable, Note: p.Note}
}

// machineParam returns the machine of an admin URL, which must be known.
func (s *Server) machineParam(r *http.Request) (string, error) {
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return "", httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "'lifeboat machines' lists the machines")
	}
	names, err := s.machineNames(r.Context())
	if err != nil {
		return "", err
	}
	if !slices.Contains(names, m) {
		return "", httpapi.Errorf(http.StatusNotFound, "unknown machine "+strconv.Quote(m), "'lifeboat machines' lists the machines")
	}
	return m, nil
}

// listPoints handles GET /v1/machines/{m}/points.
func (s *Server) listPoints(w http.ResponseWriter, r *http.Request) error {
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	pts, err := s.points(r.Context(), m)
	if errors.Is(err, store.ErrNotFound) {
		pts, err = []api.Point{}, nil
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, pts)
	return nil
}

// alertMachines gives the alerts (server/alerts) the machine records.
type alertMachines struct{ s *Server }

func (a alertMachines) Names(ctx context.Context) ([]string, error) { return a.s.machineNames(ctx) }

func (a alertMachines) Get(name string) (machines.Record, bool) { return a.s.machines.Get(name) }

// cfgMachines gives the configuration role's parts (configsrv.Plans,
// Groups, Policies) the machines: their records, points, failover,
// assignment and the local pruner.
type cfgMachines struct{ s *Server }

func (a cfgMachines) Names(ctx context.Context) ([]string, error) { return a.s.machineNames(ctx) }

func (a cfgMachines) Failover(ctx context.Context, m string, req api.FailoverRequest) (api.FailoverResult, error) {
	return a.s.failovers.Run(ctx, m, req)
}

func (a cfgMachines) Points(ctx context.Context, m string) ([]api.Point, error) {
	return a.s.points(ctx, m)
}

func (a cfgMachines) AssignedAddr(r *http.Request, m string) (id, addr string) {
	return a.s.assignedAddr(r, m)
}

func (a cfgMachines) Param(r *http.Request) (string, error) { return a.s.machineParam(r) }

func (a cfgMachines) Get(name string) (machines.Record, bool) { return a.s.machines.Get(name) }

func (a cfgMachines) Update(name string, f func(m *machines.Record)) error {
	return a.s.machines.Update(name, f)
}

func (a cfgMachines) ServesHere(m string) bool { return a.s.servesHere(m) }

func (a cfgMachines) Prune(ctx context.Context, m string) (api.PruneAnswer, error) {
	return a.s.pruner.Prune(ctx, m)
}

func (a cfgMachines) UpdateErr(name string, f func(m *machines.Record) error) error {
	return a.s.machines.UpdateErr(name, f)
}

func (a cfgMachines) Status(ctx context.Context, m string) (api.Machine, error) {
	return a.s.machineStatus(ctx, m)
}

func (a cfgMachines) AssignProcessServer(r *http.Request, m string) (addr, id string, err error) {
	return a.s.assignProcessServer(r, m)
}
