package server

import (
	"context"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/process"
)

// A joined process server's membership (join.json, heartbeats,
// assignments, drain) is the process role's process.Membership; this file
// composes it.

func (s *Server) joined() bool { return s.member != nil }

// openJoined prepares a joined process server: its client of the
// configuration server and its last known assignment.
func (s *Server) openJoined(ji process.JoinInfo) error {
	if s.cfg.Roles.Config {
		return &httpapi.Error{Msg: "this data directory joined configuration server " + ji.ConfigServer, Remedy: "run it with --roles process (a joined server has no CA key)"}
	}
	if s.cfg.ConfigServer != "" {
		ji.ConfigServer = s.cfg.ConfigServer
	}
	s.cfg.Name = ji.ID
	c, err := client.NewServer(ji.ConfigServer, s.cert, s.ca.CertPEM)
	if err != nil {
		return err
	}
	s.member = process.NewMembership(process.MembershipOptions{DataDir: s.dir, Join: ji, Client: c,
		Addr: func() string { return s.localProcessAddr("") }, Roles: s.cfg.Roles.List(), Machines: memberMachines{s}, Revoked: s.revoked,
		Cert: s.live, RenewDue: s.cfg.JoinedRenewDue, Log: s.cfg.Logger})
	return nil
}

// checkJoinedAssigned refuses a machine a joined server must not serve.
func (s *Server) checkJoinedAssigned(machine string) error { return s.member.Check(machine) }

// memberMachines gives a joined server's membership (process.Membership)
// the machine records and this server's process role.
type memberMachines struct{ s *Server }

func (a memberMachines) Get(name string) (machines.Record, bool) { return a.s.machines.Get(name) }

func (a memberMachines) Touch(name string, f func(m *machines.Record)) { a.s.machines.Touch(name, f) }

func (a memberMachines) Drain(ctx context.Context, m string) ([]api.DiskState, error) {
	return a.s.drainLocal(ctx, m)
}

func (a memberMachines) Release(m string) { a.s.releaseMachine(m) }

// Served is what a joined server's heartbeat reports of machine m.
func (a memberMachines) Served(ctx context.Context, m string) api.ServedMachine {
	s := a.s
	sm := api.ServedMachine{Machine: m, Disks: []api.DiskState{}, Problems: []string{}}
	rec, _ := s.machines.Get(m)
	if !rec.LastSeen.IsZero() {
		t := rec.LastSeen
		sm.LastSeen = &t
	}
	if disks, err := s.machineDisks(ctx, m); err == nil {
		for _, d := range disks {
			if st, err := s.diskStatus(ctx, m, d); err == nil {
				sm.Disks = append(sm.Disks, st)
			}
		}
	}
	for _, dp := range s.proc.DiskProblems(m) { // every disk held, declared or not
		sm.Problems = append(sm.Problems, process.ProblemText(dp, " on process server "+s.localID()))
	}
	return sm
}

// drain handles POST /v1/drain/{m} (process.Membership.Drain; 404 on a
// server that joined none).
func (s *Server) drain(w http.ResponseWriter, r *http.Request) error { return s.member.Drain(w, r) }
