package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Defaults of the alert thresholds (Config).
const (
	DefaultAlertRPO       = 15 * time.Minute
	DefaultAlertHeartbeat = 5 * time.Minute
	DefaultAlertCacheFree = 1 << 30
	DefaultAlertInterval  = 30 * time.Second
	DefaultResyncWindow   = time.Minute
	// keepCleared bounds the cleared alerts GET /v1/alerts lists.
	keepCleared = 100
)

// Remedies, one line each (docs/metrics.md lists them).
const (
	remedyRPO       = "check 'agentctl status' on the machine (initial sync, spool, server connection) and 'lifeboat machines' for apply errors; a point is listed only once every byte it needs is applied"
	remedyHeartbeat = "check that lifeboat-agent runs on the machine ('agentctl status') and reaches the process server; meanwhile the agent keeps its journal in its spool"
	remedyResync    = "nothing to do while it runs ('agentctl status' shows its progress); it follows a tracking gap (reboot, crash, lost changes): if it recurs, see the agent's log for the reason"
	remedyCacheLow  = "free space on the file system of the server's data directory (cache/) or move --data to a larger disk; when it is full, agents keep their segments in their spool and retry"
)

// diskKey names a disk of a machine.
type diskKey struct{ machine, disk string }

// alertState is the server's alerts: recomputed from the server's state,
// never persisted (docs/metrics.md).
type alertState struct {
	started time.Time     // when the server started: heartbeat baseline
	kick    chan struct{} // one token: evaluate now

	evalMu sync.Mutex // one evaluation at a time

	amu       sync.Mutex
	active    map[alertKey]*api.Alert
	cleared   []api.Alert // newest first
	evaluated time.Time
	raised    map[string]uint64     // by kind, since start
	hashes    map[diskKey]time.Time // last hashes request of a disk
}

type alertKey struct{ alert, machine, disk string }

func (a *alertState) init() {
	a.started = time.Now()
	a.kick = make(chan struct{}, 1)
	a.active = make(map[alertKey]*api.Alert)
	a.raised = make(map[string]uint64)
	a.hashes = make(map[diskKey]time.Time)
}

// kickAlerts asks the alert loop to evaluate now.
func (s *Server) kickAlerts() {
	select {
	case s.alerts.kick <- struct{}{}:
	default:
	}
}

// alertLoop evaluates the alerts every interval and when kicked.
func (s *Server) alertLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.evaluateAlerts(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.alerts.kick:
		}
	}
}

// noteHashes records a hashes request of a disk: only a resync asks for
// the replica's hashes.
func (s *Server) noteHashes(machine, disk string) {
	s.alerts.amu.Lock()
	s.alerts.hashes[diskKey{machine, disk}] = time.Now()
	_, active := s.alerts.active[alertKey{api.AlertResync, machine, disk}]
	s.alerts.amu.Unlock()
	if !active {
		s.kickAlerts()
	}
}

// noteContact is called after each request of a machine to the process
// role: a lost heartbeat is cleared at once.
func (s *Server) noteContact(machine string) {
	s.alerts.amu.Lock()
	_, lost := s.alerts.active[alertKey{api.AlertHeartbeat, machine, ""}]
	s.alerts.amu.Unlock()
	if lost {
		s.kickAlerts()
	}
}

// evaluateAlerts computes the conditions, raises the new alerts and clears
// those whose condition is gone.
func (s *Server) evaluateAlerts(ctx context.Context) {
	s.alerts.evalMu.Lock()
	defer s.alerts.evalMu.Unlock()
	now := time.Now()
	conds, err := s.alertConditions(ctx, now)
	if err != nil {
		// Keep the alerts as they are rather than clear them on a
		// failure to look.
		if ctx.Err() == nil {
			s.log.Warn("evaluate alerts", httpapi.LogErr, err)
		}
		return
	}
	log := s.cfg.Logger.With(httpapi.LogComponent, "alerts")
	a := &s.alerts
	a.amu.Lock()
	defer a.amu.Unlock()
	seen := map[alertKey]bool{}
	for _, c := range conds {
		k := alertKey{c.Alert, c.Machine, c.Disk}
		seen[k] = true
		if cur := a.active[k]; cur != nil {
			cur.Message, cur.Severity, cur.Remedy = c.Message, c.Severity, c.Remedy
			continue
		}
		c.Since = now.UTC()
		a.active[k] = &c
		a.raised[c.Alert]++
		log.Warn("alert raised", "alert", c.Alert, httpapi.LogMachine, c.Machine, httpapi.LogDisk, c.Disk, "detail", c.Message, "remedy", c.Remedy)
	}
	for k, cur := range a.active {
		if seen[k] {
			continue
		}
		t := now.UTC()
		cur.Cleared = &t
		a.cleared = slices.Insert(a.cleared, 0, *cur)
		if len(a.cleared) > keepCleared {
			a.cleared = a.cleared[:keepCleared]
		}
		delete(a.active, k)
		log.Info("alert cleared", "alert", k.alert, httpapi.LogMachine, k.machine, httpapi.LogDisk, k.disk, "active_for", t.Sub(cur.Since).Round(time.Second).String())
	}
	a.evaluated = now.UTC()
}

// alertConditions returns the alerts whose condition holds now, without
// Since.
func (s *Server) alertConditions(ctx context.Context, now time.Time) ([]api.Alert, error) {
	var out []api.Alert
	cfg := s.cfg
	if cfg.Roles.Process && cfg.AlertCacheFree > 0 {
		free, _, err := cacheSpace(s.dir)
		if err != nil && !errors.Is(err, errNoStatfs) {
			return nil, err
		}
		if err == nil && free < uint64(cfg.AlertCacheFree) {
			out = append(out, api.Alert{Alert: api.AlertCacheLow, Severity: api.SeverityCritical,
				Message: fmt.Sprintf("%s free in the data directory %s, under the threshold of %s", fmtBytes(free), s.dir, fmtBytes(uint64(cfg.AlertCacheFree))),
				Remedy:  remedyCacheLow})
		}
	}
	names, err := s.machineNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		rec, known := s.machines.Get(name)
		if rec.State == api.StateCommitted {
			continue // protection ended: nothing is expected of it
		}
		if cfg.Roles.Process && cfg.AlertHeartbeat > 0 && known {
			last, since := rec.LastSeen, "last contact "
			if last.IsZero() {
				last, since = s.alerts.started, "no contact since the server started "
			}
			if age := now.Sub(last); age > cfg.AlertHeartbeat {
				out = append(out, api.Alert{Alert: api.AlertHeartbeat, Machine: name, Severity: api.SeverityCritical,
					Message: fmt.Sprintf("%s%s ago (%s), over the threshold of %s", since, fmtAge(age), last.UTC().Format(time.RFC3339), cfg.AlertHeartbeat),
					Remedy:  remedyHeartbeat})
			}
		}
		if cfg.AlertRPO > 0 {
			pts, err := s.store.Points(ctx, name)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("points of %s: %w", name, err)
			}
			var msg string
			if len(pts) > 0 {
				newest := pts[len(pts)-1].Time
				for _, p := range pts {
					newest = maxTime(newest, p.Time)
				}
				if age := now.Sub(newest); age > cfg.AlertRPO {
					msg = fmt.Sprintf("newest recovery point is %s old, over the RPO threshold of %s", fmtAge(age), cfg.AlertRPO)
				}
			} else if rec.Registered != nil {
				if age := now.Sub(*rec.Registered); age > cfg.AlertRPO {
					msg = fmt.Sprintf("no recovery point %s after registration, over the RPO threshold of %s", fmtAge(age), cfg.AlertRPO)
				}
			}
			if msg != "" {
				out = append(out, api.Alert{Alert: api.AlertRPO, Machine: name, Severity: api.SeverityCritical, Message: msg, Remedy: remedyRPO})
			}
		}
	}
	s.alerts.amu.Lock()
	for k, t := range s.alerts.hashes {
		if age := now.Sub(t); age <= cfg.ResyncWindow {
			out = append(out, api.Alert{Alert: api.AlertResync, Machine: k.machine, Disk: k.disk, Severity: api.SeverityWarning,
				Message: fmt.Sprintf("disk %s is being resynchronised (checksum compare with the replica; last request %s ago)", k.disk, fmtAge(age)),
				Remedy:  remedyResync})
		} else {
			delete(s.alerts.hashes, k)
		}
	}
	s.alerts.amu.Unlock()
	return out, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtAge(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// activeAlerts returns the active alerts, of one machine if machine is
// not "", sorted by machine, kind and disk.
func (s *Server) activeAlerts(machine string) []api.Alert {
	s.alerts.amu.Lock()
	defer s.alerts.amu.Unlock()
	out := []api.Alert{}
	for _, a := range s.alerts.active {
		if machine == "" || a.Machine == machine {
			out = append(out, *a)
		}
	}
	sortAlerts(out)
	return out
}

func sortAlerts(as []api.Alert) {
	slices.SortFunc(as, func(a, b api.Alert) int {
		return cmp.Or(cmp.Compare(a.Machine, b.Machine), cmp.Compare(a.Alert, b.Alert), cmp.Compare(a.Disk, b.Disk))
	})
}

// Alerts evaluates the alert conditions now and returns the alerts.
func (s *Server) Alerts(ctx context.Context) api.Alerts {
	s.evaluateAlerts(ctx)
	out := api.Alerts{Active: s.activeAlerts("")}
	s.alerts.amu.Lock()
	out.Evaluated = s.alerts.evaluated
	out.Cleared = slices.Clone(s.alerts.cleared)
	s.alerts.amu.Unlock()
	if out.Cleared == nil {
		out.Cleared = []api.Alert{}
	}
	return out
}

// listAlerts handles GET /v1/alerts.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, s.Alerts(r.Context()))
	return nil
}
