package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/process"
)

// configHandler routes the configuration role: registration and the admin
// API.
func (s *Server) configHandler() http.Handler {
	log := s.cfg.Logger.With(httpapi.LogComponent, "config")
	mux := http.NewServeMux()
	mux.Handle("POST "+api.PathRegister, httpapi.Handle(log, s.registration.Register))
	mux.Handle("POST "+api.PathRenew, httpapi.Handle(log, s.registration.Renew))
	mux.Handle("PUT "+api.PathAgentGroup, httpapi.Handle(log, s.groups.SyncAgent))
	mux.Handle("POST "+api.PathAgentGroupResult, httpapi.Handle(log, s.groups.AgentResult))
	mux.Handle("POST "+api.PathServerJoin, httpapi.Handle(log, s.servers.Join))
	mux.Handle("PUT "+api.PathServerHeartbeat, httpapi.Handle(log, s.servers.Heartbeat))
	mux.Handle("POST "+api.PathAgentBookmarkResult, httpapi.Handle(log, s.groups.AgentBookmarkResult))
	mux.Handle("POST "+api.PathServerRenew, httpapi.Handle(log, s.servers.RenewServer))
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
	admin("GET "+api.PathMachines, s.status.List)
	admin("GET "+api.PathPoints, s.status.ListPoints)
	admin("POST "+api.PathFailover, s.failovers.Failover)
	admin("POST "+api.PathCommit, s.failovers.Commit)
	admin("POST "+api.PathBootTest, s.drills.BootTest)
	admin("GET "+api.PathVMs, s.drills.VMs().HandleList)
	admin("DELETE "+api.PathVM, s.drills.VMs().HandleStop)
	admin("GET "+api.PathDrills, s.drills.List)
	admin("GET "+api.PathDrill, s.drills.Get)
	admin("PUT "+api.PathDrill, s.drills.Put)
	admin("POST "+api.PathDrillRun, s.drills.RunNow)
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
	admin("GET "+api.PathServers, s.servers.List)
	admin("POST "+api.PathMove, s.servers.MoveMachine)
	admin("GET "+api.PathServer, s.servers.Info)
	admin("POST "+api.PathReregister, s.identities.Reregister)
	admin("POST "+api.PathRevoke, s.identities.Revoke)
	admin("POST "+api.PathDiscard, s.audited("discard", s.servers.Discard))
	admin("GET "+api.PathUsers, s.console.ListUsers)
	admin("POST "+api.PathUsers, s.console.AddUser)
	admin("DELETE "+api.PathUser, s.console.RemoveUser)
	admin("GET "+api.PathAudit, s.console.ListAudit)
	admin("POST "+api.PathBookmark, s.groups.RequestBookmark)
	admin("GET "+api.PathBookmark, s.groups.BookmarkStatus)
	admin("GET "+api.PathTestFailovers, s.failovers.Tests.List)
	admin("DELETE "+api.PathTestFailover, s.failovers.Tests.Cleanup)
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

// alertMachines gives the alerts (server/alerts) the machine records.
type alertMachines struct{ s *Server }

func (a alertMachines) Names(ctx context.Context) ([]string, error) { return a.s.status.Names(ctx) }

func (a alertMachines) Get(name string) (machines.Record, bool) { return a.s.machines.Get(name) }

// cfgMachines gives the configuration role's parts (configsrv.Plans,
// Groups, Policies) the machines: their records, points, failover,
// assignment and the local pruner.
type cfgMachines struct{ s *Server }

func (a cfgMachines) Names(ctx context.Context) ([]string, error) { return a.s.status.Names(ctx) }

func (a cfgMachines) Failover(ctx context.Context, m string, req api.FailoverRequest) (api.FailoverResult, error) {
	return a.s.failovers.Run(ctx, m, req)
}

func (a cfgMachines) Points(ctx context.Context, m string) ([]api.Point, error) {
	return a.s.status.Points(ctx, m)
}

func (a cfgMachines) AssignedAddr(r *http.Request, m string) (id, addr string) {
	return a.s.servers.AssignedAddr(r, m)
}

func (a cfgMachines) Param(r *http.Request) (string, error) { return a.s.status.Param(r) }

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
	return a.s.status.Machine(ctx, m)
}

func (a cfgMachines) AssignProcessServer(r *http.Request, m string) (addr, id string, err error) {
	return a.s.servers.AssignProcessServer(r, m)
}

func (a cfgMachines) Each(f func(name string, m *machines.Record)) { a.s.machines.Each(f) }

// statusMachines gives the status view (configsrv.Status) the records and
// this server's process role.
type statusMachines struct{ s *Server }

func (a statusMachines) Get(name string) (machines.Record, bool) { return a.s.machines.Get(name) }

func (a statusMachines) Each(f func(name string, m *machines.Record)) { a.s.machines.Each(f) }

func (a statusMachines) Disks(ctx context.Context, m string) ([]string, error) {
	return a.s.machineDisks(ctx, m)
}

func (a statusMachines) DiskStatus(ctx context.Context, m, disk string) (api.DiskState, error) {
	return a.s.diskStatus(ctx, m, disk)
}

func (a statusMachines) DiskProblems(m string) []string {
	var out []string
	for _, dp := range a.s.proc.DiskProblems(m) {
		out = append(out, process.ProblemText(dp, ""))
	}
	return out
}

func (a statusMachines) Failback(m string) *api.FailbackStatus { return a.s.failback.Current(m) }
