package server

import (
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/mastertarget"
)

// mtMachines gives the master-target role (server/mastertarget) the
// machine records of the configuration role.
type mtMachines struct{ s *Server }

func (a mtMachines) MachineParam(r *http.Request) (string, error) { return a.s.status.Param(r) }

func (a mtMachines) FailbackMachine(m string) mastertarget.Machine {
	rec, _ := a.s.machines.Get(m)
	return mastertarget.Machine{State: rec.StateName(), Failover: rec.Failover, Failback: rec.Failback}
}

func (a mtMachines) SetFailedBack(m string, st api.FailbackStatus, at time.Time) error {
	return a.s.machines.Update(m, func(rec *machines.Record) {
		rec.State = api.StateFailedBack
		rec.Failback = &st
		rec.FailedBack = &at
	})
}
