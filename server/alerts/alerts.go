package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/config"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Defaults of the alert thresholds (Options).
const (
	DefaultRPO          = 15 * time.Minute
	DefaultHeartbeat    = 5 * time.Minute
	DefaultCacheFree    = 1 << 30
	DefaultInterval     = 30 * time.Second
	DefaultResyncWindow = time.Minute
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

// ErrNoStatfs: the free space of a directory cannot be read on this
// system.
var ErrNoStatfs = errors.New("free space not available on this system")

// Machines is what the alerts read of the machine records.
type Machines interface {
	// Names lists, sorted, every machine registered or with data.
	Names(ctx context.Context) ([]string, error)
	// Get returns the record of a machine, and whether it is registered.
	Get(name string) (machines.Record, bool)
}

// Points is what the alerts read of target storage.
type Points interface {
	Points(ctx context.Context, machine string) ([]store.Point, error)
}

// Options configures a Monitor. A threshold of 0 means its Default, a
// negative one disables its alert.
type Options struct {
	// RPO: age of the newest point; Heartbeat: time without contact
	// from an agent; CacheFree: free bytes of the data directory.
	RPO       time.Duration
	Heartbeat time.Duration
	CacheFree int64
	// Interval is how often Run evaluates (0: DefaultInterval).
	Interval time.Duration
	// ResyncWindow: a disk whose replica hashes were asked for within
	// it is shown as resyncing (0: DefaultResyncWindow).
	ResyncWindow time.Duration
	// Process says the process role runs here: only then are the
	// heartbeat and the cache space watched.
	Process bool
	// DataDir is the data directory, CacheDir its segment cache (whose
	// free space is watched).
	DataDir, CacheDir string
	Machines          Machines
	Store             Points
	// Drills, when set, raises the drill alerts (drill.go).
	Drills Drills
	// Notify, if set, is told of the alerts each evaluation raised and
	// cleared (Notifier.Notify delivers them to webhooks); it must not
	// block.
	Notify func(raised, cleared []api.Alert)
	// Disks, when set, gives the problems of the disks of the local
	// process role: each raises an alert (apply-failing, upload-refused).
	Disks DiskProblems
	Log   *slog.Logger
}

// DiskProblems is what the alerts read of the process role.
type DiskProblems interface {
	DiskProblems(machine string) []api.DiskProblem
}

// diskKey names a disk of a machine.
type diskKey struct{ machine, disk string }

// Monitor is the server's alerts: recomputed from the server's state,
// never persisted (docs/metrics.md).
type Monitor struct {
	opt     Options
	log     *slog.Logger  // component "alerts"
	srvLog  *slog.Logger  // component "server": failures to evaluate
	started time.Time     // when the server started: heartbeat baseline
	kick    chan struct{} // one token: evaluate now

	evalMu sync.Mutex // one evaluation at a time

	amu       sync.Mutex
	active    map[alertKey]*api.Alert
	cleared   []api.Alert // newest first
	evaluated time.Time
	raised    map[string]uint64     // by kind, since start
	hashes    map[diskKey]time.Time // last hashes request of a disk
	noted     map[alertKey]noted    // event alerts (events.go)
}

type alertKey struct{ alert, machine, disk string }

// New returns a Monitor with the defaults of Options applied; the
// heartbeat baseline is now.
func New(opt Options) *Monitor {
	opt.RPO = defaultDuration(opt.RPO, DefaultRPO)
	opt.Heartbeat = defaultDuration(opt.Heartbeat, DefaultHeartbeat)
	if opt.CacheFree == 0 {
		opt.CacheFree = DefaultCacheFree
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.ResyncWindow <= 0 {
		opt.ResyncWindow = DefaultResyncWindow
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Monitor{
		opt:     opt,
		log:     opt.Log.With(httpapi.LogComponent, "alerts"),
		srvLog:  opt.Log.With(httpapi.LogComponent, "server"),
		started: time.Now(),
		kick:    make(chan struct{}, 1),
		active:  make(map[alertKey]*api.Alert),
		raised:  make(map[string]uint64),
		hashes:  make(map[diskKey]time.Time),
	}
}

// defaultDuration returns def for 0, and d otherwise.
func defaultDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// kickAlerts asks the alert loop to evaluate now.
func (s *Monitor) kickAlerts() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run evaluates the alerts every interval and when kicked, until ctx
// ends.
func (s *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		s.Evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// NoteHashes records a hashes request of a disk: only a resync asks for
// the replica's hashes.
func (s *Monitor) NoteHashes(machine, disk string) {
	s.amu.Lock()
	s.hashes[diskKey{machine, disk}] = time.Now()
	_, active := s.active[alertKey{api.AlertResync, machine, disk}]
	s.amu.Unlock()
	if !active {
		s.kickAlerts()
	}
}

// NoteContact is called after each request of a machine to the process
// role: a lost heartbeat is cleared at once.
func (s *Monitor) NoteContact(machine string) {
	s.amu.Lock()
	_, lost := s.active[alertKey{api.AlertHeartbeat, machine, ""}]
	s.amu.Unlock()
	if lost {
		s.kickAlerts()
	}
}

// Evaluate computes the conditions, raises the new alerts and clears
// those whose condition is gone.
func (s *Monitor) Evaluate(ctx context.Context) {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	now := time.Now()
	conds, err := s.alertConditions(ctx, now)
	if err != nil {
		// Keep the alerts as they are rather than clear them on a
		// failure to look.
		if ctx.Err() == nil {
			s.srvLog.Warn("evaluate alerts", httpapi.LogErr, err)
		}
		return
	}
	log := s.log
	a := s
	a.amu.Lock()
	defer a.amu.Unlock()
	seen := map[alertKey]bool{}
	var raised, cleared []api.Alert
	if s.opt.Notify != nil {
		defer func() { s.opt.Notify(raised, cleared) }()
	}
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
		raised = append(raised, c)
		log.Warn("alert raised", "alert", c.Alert, httpapi.LogMachine, c.Machine, httpapi.LogDisk, c.Disk, "detail", c.Message, "remedy", c.Remedy)
	}
	for k, cur := range a.active {
		if seen[k] {
			continue
		}
		t := now.UTC()
		cur.Cleared = &t
		a.cleared = slices.Insert(a.cleared, 0, *cur)
		cleared = append(cleared, *cur)
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
func (s *Monitor) alertConditions(ctx context.Context, now time.Time) ([]api.Alert, error) {
	var out []api.Alert
	cfg := s.opt
	if cfg.Process && cfg.CacheFree > 0 {
		free, _, err := Space(cfg.CacheDir, cfg.DataDir)
		if err != nil && !errors.Is(err, ErrNoStatfs) {
			return nil, err
		}
		if err == nil && free < uint64(cfg.CacheFree) {
			out = append(out, api.Alert{Alert: api.AlertCacheLow, Severity: api.SeverityCritical,
				Message: fmt.Sprintf("%s free in the data directory %s, under the threshold of %s", fmtBytes(free), cfg.DataDir, fmtBytes(uint64(cfg.CacheFree))),
				Remedy:  remedyCacheLow})
		}
	}
	names, err := cfg.Machines.Names(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		rec, known := cfg.Machines.Get(name)
		if rec.State == api.StateCommitted {
			continue // protection ended: nothing is expected of it
		}
		if cfg.Process && cfg.Heartbeat > 0 && known {
			last, since := rec.LastSeen, "last contact "
			if last.IsZero() {
				last, since = s.started, "no contact since the server started "
				if rec.Registered != nil && rec.Registered.After(last) {
					// Registering is the agent's first contact: a machine
					// that registers late is not silent since the start.
					last, since = *rec.Registered, "no contact since it registered "
				}
			}
			if age := now.Sub(last); age > cfg.Heartbeat {
				out = append(out, api.Alert{Alert: api.AlertHeartbeat, Machine: name, Severity: api.SeverityCritical,
					Message: fmt.Sprintf("%s%s ago (%s), over the threshold of %s", since, fmtAge(age), last.UTC().Format(time.RFC3339), cfg.Heartbeat),
					Remedy:  remedyHeartbeat})
			}
		}
		if cfg.Disks != nil {
			out = append(out, diskAlerts(name, cfg.Disks.DiskProblems(name))...)
		}
		if cfg.RPO > 0 {
			pts, err := cfg.Store.Points(ctx, name)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("points of %s: %w", name, err)
			}
			var msg string
			if len(pts) > 0 {
				newest := pts[len(pts)-1].Time
				for _, p := range pts {
					newest = MaxTime(newest, p.Time)
				}
				if age := now.Sub(newest); age > cfg.RPO {
					msg = fmt.Sprintf("newest recovery point is %s old, over the RPO threshold of %s", fmtAge(age), cfg.RPO)
				}
			} else if rec.Registered != nil {
				if age := now.Sub(*rec.Registered); age > cfg.RPO {
					msg = fmt.Sprintf("no recovery point %s after registration, over the RPO threshold of %s", fmtAge(age), cfg.RPO)
				}
			}
			if msg != "" {
				out = append(out, api.Alert{Alert: api.AlertRPO, Machine: name, Severity: api.SeverityCritical, Message: msg, Remedy: remedyRPO})
			}
		}
	}
	out = append(out, drillConditions(cfg.Drills, now)...)
	s.amu.Lock()
	out = append(out, s.notedConditions(now)...)
	for k, t := range s.hashes {
		if age := now.Sub(t); age <= cfg.ResyncWindow {
			out = append(out, api.Alert{Alert: api.AlertResync, Machine: k.machine, Disk: k.disk, Severity: api.SeverityWarning,
				Message: fmt.Sprintf("disk %s is being resynchronised (checksum compare with the replica; last request %s ago)", k.disk, fmtAge(age)),
				Remedy:  remedyResync})
		} else {
			delete(s.hashes, k)
		}
	}
	s.amu.Unlock()
	return out, nil
}

// MaxTime returns the later of a and b.
func MaxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func fmtBytes(n uint64) string { return config.FormatBytes(int64(n)) }

func fmtAge(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Active returns the active alerts, of one machine if machine is not "",
// sorted by machine, kind and disk.
func (s *Monitor) Active(machine string) []api.Alert {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := []api.Alert{}
	for _, a := range s.active {
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
func (s *Monitor) Alerts(ctx context.Context) api.Alerts {
	s.Evaluate(ctx)
	out := api.Alerts{Active: s.Active("")}
	s.amu.Lock()
	out.Evaluated = s.evaluated
	out.Cleared = slices.Clone(s.cleared)
	s.amu.Unlock()
	if out.Cleared == nil {
		out.Cleared = []api.Alert{}
	}
	return out
}

// Stats is what the metrics show of the alerts.
type Stats struct {
	// Active: the kind and machine of each active alert.
	Active [][2]string
	// Raised counts the alerts raised since the start, by kind.
	Raised map[string]uint64
	// Evaluated is the time of the last evaluation, zero before it.
	Evaluated time.Time
}

// Stats returns what the metrics show of the alerts.
func (s *Monitor) Stats() Stats {
	s.amu.Lock()
	defer s.amu.Unlock()
	st := Stats{Raised: maps.Clone(s.raised), Evaluated: s.evaluated}
	for k := range s.active {
		st.Active = append(st.Active, [2]string{k.alert, k.machine})
	}
	return st
}

// List handles GET /v1/alerts.
func (s *Monitor) List(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, s.Alerts(r.Context()))
	return nil
}

// diskAlerts are the alerts of the problems of a machine's disks: an
// applier that keeps failing is critical (no point after it can be
// listed), a refused upload a warning until it is.
func diskAlerts(machine string, ps []api.DiskProblem) []api.Alert {
	var out []api.Alert
	for _, p := range ps {
		a := api.Alert{Machine: machine, Disk: p.Disk, Message: p.Message, Remedy: p.Remedy}
		if p.Kind == api.DiskProblemApply {
			a.Message = fmt.Sprintf("apply of disk %s failing since %s: %s", p.Disk, p.Since.UTC().Format(time.RFC3339), p.Message)
		}
		switch p.Kind {
		case api.DiskProblemApply:
			a.Alert, a.Severity = api.AlertApplyFailing, api.SeverityCritical
		case api.DiskProblemRefused:
			a.Alert, a.Severity = api.AlertUploadRefused, api.SeverityWarning
			if p.Count > 1 {
				a.Message = fmt.Sprintf("%s (%d refusals since %s)", p.Message, p.Count, p.Since.UTC().Format(time.RFC3339))
			}
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}
