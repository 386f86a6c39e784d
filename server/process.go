package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/store"
)

// processHandler routes the replication endpoints of the process role
// (server/process) and the drain of a joined process server.
func (s *Server) processHandler() http.Handler {
	log := s.cfg.Logger.With(httpapi.LogComponent, "process")
	mux := http.NewServeMux()
	s.proc.Routes(mux, log)
	mux.Handle("POST "+api.PathDrain, httpapi.Handle(log, s.drain))
	mux.Handle("POST "+api.PathProcessDiscard, httpapi.Handle(log, s.member.DiscardHandler(s.proc)))
	mux.Handle("/", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "see docs/protocol.md for the process role's endpoints")
	}))
	return mux
}

// procMachines gives the process role (server/process) the machine
// records.
type procMachines struct{ s *Server }

func (a procMachines) Admit(r *http.Request, m string) error {
	if err := a.s.checkAssigned(m); err != nil {
		return err
	}
	a.s.machines.Seen(m)
	return a.s.checkProtected(r, m)
}

func (a procMachines) CheckAssigned(m string) error { return a.s.checkAssigned(m) }

func (a procMachines) Disks(m string) []api.DiskSpec {
	rec, _ := a.s.machines.Get(m)
	return rec.Disks
}

func (a procMachines) SetDisks(m string, disks []api.DiskSpec) error {
	return a.s.machines.Update(m, func(rec *machines.Record) { rec.Disks = disks })
}

func (a procMachines) Status(ctx context.Context, m string) (api.Machine, error) {
	return a.s.status.Machine(ctx, m)
}

// checkProtected refuses a machine whose failover was committed (410), and
// after a re-protection any certificate but the latest.
func (s *Server) checkProtected(r *http.Request, m string) error {
	rec, _ := s.machines.Get(m)
	if rec.State == api.StateCommitted {
		return goneError(m, rec)
	}
	if rec.State == api.StateFailedBack {
		return failedBackError(m, rec)
	}
	if rec.SerialOnly && r.TLS.PeerCertificates[0].SerialNumber.Text(16) != rec.Serial {
		return httpapi.Errorf(http.StatusForbidden, "certificate of machine "+m+" retired when its failover was committed",
			"only the certificate of the latest registration may replicate this machine: register the agent again")
	}
	return nil
}

// diskStatus returns the state of a disk as the API shows it.
func (s *Server) diskStatus(ctx context.Context, machine, disk string) (api.DiskState, error) {
	if s.proc != nil && s.servesHere(machine) {
		return s.proc.DiskState(machine, disk)
	}
	st := api.DiskState{Disk: disk}
	if m, ok := s.machines.Get(machine); ok {
		for _, d := range m.Disks {
			if d.Name == disk {
				st.Size = d.Size
			}
		}
	}
	// Without the process role, target storage is all there is.
	infos, err := s.store.Disks(ctx, machine)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return st, err
	}
	for _, in := range infos {
		if in.Name == disk && in.Applied {
			st.Applied, st.AppliedSeq, st.NextSeq = true, in.AppliedSeq, in.AppliedSeq+1
		}
	}
	return st, nil
}

// machineDisks returns the disks of a machine, sorted: those it declared,
// or else every disk target storage knows or the process role holds
// segments of.
func (s *Server) machineDisks(ctx context.Context, machine string) ([]string, error) {
	rec, _ := s.machines.Get(machine)
	return process.DiskNames(ctx, s.store, machine, rec.Disks, s.proc.Received(machine))
}

// goneError is the process role's answer to a machine whose failover was
// committed.
func goneError(m string, rec machines.Record) *httpapi.Error {
	return httpapi.Errorf(http.StatusGone, fmt.Sprintf("machine %s was failed over and committed at %s: its protection has ended", m, whenRFC3339(rec.Committed)),
		"nothing from the old source is accepted any more; to protect this machine (or the recovered one) again, register its agent again: it then resyncs against the kept replica")
}

// failedBackError is the process role's answer to the old source of a
// machine that has failed back: its disks now hold the recovered data, so
// what its agent would send predates them.
func failedBackError(m string, rec machines.Record) *httpapi.Error {
	return httpapi.Errorf(http.StatusGone, fmt.Sprintf("machine %s failed back at %s: its old protection has ended", m, whenRFC3339(rec.FailedBack)),
		"register the agent again to protect the failed-back disks: it then resyncs against the replica, sending only blocks that differ")
}

// whenRFC3339 formats a time of a record, "?" when there is none.
func whenRFC3339(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return t.UTC().Format(time.RFC3339)
}
