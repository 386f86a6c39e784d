package configsrv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// StatusMachines is what the status view needs of the machine records and
// of the process role that holds their disks.
type StatusMachines interface {
	Get(name string) (machines.Record, bool)
	Each(f func(name string, m *machines.Record))
	// Disks returns the disks of a machine, sorted; DiskStatus the
	// state of one; DiskProblems the problems of every disk the
	// process role holds of the machine (failing applies, refused
	// uploads), as text.
	Disks(ctx context.Context, m string) ([]string, error)
	DiskStatus(ctx context.Context, m, disk string) (api.DiskState, error)
	DiskProblems(m string) []string
	// Failback returns the machine's failback session, nil when none.
	Failback(m string) *api.FailbackStatus
}

// StatusStore is target storage as the status view reads it.
type StatusStore interface {
	Machines(ctx context.Context) ([]string, error)
	Points(ctx context.Context, machine string) ([]store.Point, error)
}

// StatusAlerts are the alerts shown in a machine's status (server/alerts).
type StatusAlerts interface {
	Evaluate(ctx context.Context)
	Active(machine string) []api.Alert
}

// StatusOptions configure NewStatus.
type StatusOptions struct {
	// CacheDir is the process role's cache: a machine with segments
	// there is listed too.
	CacheDir string
	Machines StatusMachines
	Store    StatusStore
	Alerts   StatusAlerts
	// Servers completes a machine's status with its process server; nil
	// without the configuration role.
	Servers *Servers
}

// Status is the machines' status view: GET /v1/machines and
// /v1/machines/{m}/points, and the status the process role answers an
// agent with.
type Status struct{ o StatusOptions }

// NewStatus returns the status view.
func NewStatus(o StatusOptions) *Status { return &Status{o: o} }

// List handles GET /v1/machines.
func (s *Status) List(w http.ResponseWriter, r *http.Request) error {
	names, err := s.Names(r.Context())
	if err != nil {
		return err
	}
	s.o.Alerts.Evaluate(r.Context())
	out := make([]api.Machine, 0, len(names))
	for _, n := range names {
		m, err := s.Machine(r.Context(), n)
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Names lists, sorted, every machine registered or with data.
func (s *Status) Names(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	s.o.Machines.Each(func(n string, _ *machines.Record) { set[n] = true })
	ms, err := s.o.Store.Machines(ctx)
	if err != nil {
		return nil, fmt.Errorf("target storage: %w", err)
	}
	for _, n := range ms {
		set[n] = true
	}
	if ents, err := os.ReadDir(s.o.CacheDir); err == nil {
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

// Machine returns what the admin API shows of a machine.
func (s *Status) Machine(ctx context.Context, name string) (api.Machine, error) {
	rec, _ := s.o.Machines.Get(name)
	m := api.Machine{Name: name, Registered: rec.Registered, Disks: []api.DiskState{}}
	if !rec.LastSeen.IsZero() {
		t := rec.LastSeen
		m.LastSeen = &t
	}
	disks, err := s.o.Machines.Disks(ctx, name)
	if err != nil {
		return m, err
	}
	for _, d := range disks {
		st, err := s.o.Machines.DiskStatus(ctx, name, d)
		if err != nil {
			return m, err
		}
		m.Disks = append(m.Disks, st)
	}
	pts, err := s.Points(ctx, name)
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
	if fb := s.o.Machines.Failback(name); fb != nil {
		m.Failback = fb
		m.State = fb.State
		if fb.Phase == api.FailbackFailed {
			m.Problems = append(m.Problems, "failback failed: "+fb.Error+" ("+fb.Hint+")")
		}
	}
	m.Alerts = s.o.Alerts.Active(name)
	if p := rec.LastPrune; p != nil && p.Error != "" {
		m.Problems = append(m.Problems, "prune failed: "+p.Error)
	}
	m.Problems = append(m.Problems, s.o.Machines.DiskProblems(name)...) // every disk held, declared or not
	if s.o.Servers != nil {
		s.o.Servers.AssignmentStatus(&m, rec)
	}
	return m, nil
}

// Points returns the listed points of a machine, oldest first.
func (s *Status) Points(ctx context.Context, machine string) ([]api.Point, error) {
	ps, err := s.o.Store.Points(ctx, machine)
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

// Param returns the machine of an admin URL, which must be known.
func (s *Status) Param(r *http.Request) (string, error) {
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return "", httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "'lifeboat machines' lists the machines")
	}
	names, err := s.Names(r.Context())
	if err != nil {
		return "", err
	}
	if !slices.Contains(names, m) {
		return "", httpapi.Errorf(http.StatusNotFound, "unknown machine "+strconv.Quote(m), "'lifeboat machines' lists the machines")
	}
	return m, nil
}

// ListPoints handles GET /v1/machines/{m}/points.
func (s *Status) ListPoints(w http.ResponseWriter, r *http.Request) error {
	m, err := s.Param(r)
	if err != nil {
		return err
	}
	pts, err := s.Points(r.Context(), m)
	if errors.Is(err, store.ErrNotFound) {
		pts, err = []api.Point{}, nil
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, pts)
	return nil
}
