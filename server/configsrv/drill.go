package configsrv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/recovery/boot"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// DrillsFile holds the drill policies and the last results
// (DataDir/drills.json).
const DrillsFile = "drills.json"

// DefaultDrillTick is how often the drill scheduler looks for a due
// drill.
const DefaultDrillTick = 30 * time.Second

// MinDrillInterval is the shortest drill interval accepted.
const MinDrillInterval = time.Minute

// drillRecord is what drills.json keeps of a machine.
type drillRecord struct {
	Policy       api.DrillPolicy `json:"policy"`
	Since        *time.Time      `json:"since,omitempty"`
	LastDrill    *api.BootResult `json:"last_drill,omitempty"`
	LastPass     *time.Time      `json:"last_pass,omitempty"`
	LastBootTest *api.BootResult `json:"last_boot_test,omitempty"`
}

// DrillOptions configures Drills.
type DrillOptions struct {
	// DataDir is the server's data directory.
	DataDir string
	// Failovers materializes (its machines and target storage).
	Failovers *Failovers
	// Boot boots; boot.Boot when nil.
	Boot BootFunc
	// Tick is how often Run looks for a due drill (DefaultDrillTick
	// when 0).
	Tick time.Duration
	// Changed is called after each boot test or drill (the alerts
	// re-evaluate); may be nil.
	Changed func()
	Log     *slog.Logger
}

// Drills runs the boot-verified test failovers (/v1/machines/{m}/boot-test)
// and the scheduled drills (/v1/machines/{m}/drill, /v1/drills), and keeps
// the kept VMs (/v1/vms). One drill runs at a time per server; drills and
// boot tests never write a machine's record or its replica, and run at
// boot.Priority.
type Drills struct {
	f       *Failovers
	dir     string
	boot    BootFunc
	tick    time.Duration
	changed func()
	log     *slog.Logger
	vms     *VMs

	runMu sync.Mutex    // one drill at a time
	kick  chan struct{} // one token: look for due drills now

	mu      sync.Mutex
	recs    map[string]*drillRecord
	running map[string]bool
	counts  map[[2]string]uint64 // machine, result → drills
}

// NewDrills reads DataDir/drills.json.
func NewDrills(o DrillOptions) (*Drills, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Boot == nil {
		o.Boot = boot.Boot
	}
	if o.Tick <= 0 {
		o.Tick = DefaultDrillTick
	}
	d := &Drills{f: o.Failovers, dir: o.DataDir, boot: o.Boot, tick: o.Tick, changed: o.Changed, log: o.Log,
		vms: newVMs(o.Log.With(httpapi.LogComponent, "config")), recs: map[string]*drillRecord{},
		running: map[string]bool{}, counts: map[[2]string]uint64{}, kick: make(chan struct{}, 1)}
	b, err := os.ReadFile(filepath.Join(o.DataDir, DrillsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("drills: %w", err)
	default:
		if err := json.Unmarshal(b, &d.recs); err != nil {
			return nil, api.WithHint(fmt.Errorf("drills: %s: %w", filepath.Join(o.DataDir, DrillsFile), err),
				"the file is damaged: move it away to start with no drill policies")
		}
	}
	// Leftover temporary images of a server that died mid-test.
	os.RemoveAll(filepath.Join(o.DataDir, bootTmpDir))
	return d, nil
}

// VMs returns the kept VMs.
func (d *Drills) VMs() *VMs { return d.vms }

// Close stops the kept VMs.
func (d *Drills) Close() error { return d.vms.Close() }

// saveLocked writes drills.json; d.mu is held.
func (d *Drills) saveLocked() error {
	b, err := json.MarshalIndent(d.recs, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(d.dir, DrillsFile), b, 0o600); err != nil {
		return fmt.Errorf("drills: %w", err)
	}
	return nil
}

// record stores a result.
func (d *Drills) record(res api.BootResult) {
	d.mu.Lock()
	rec := d.recs[res.Machine]
	if rec == nil {
		rec = &drillRecord{}
		d.recs[res.Machine] = rec
	}
	r := res
	if res.Drill {
		rec.LastDrill = &r
		result := "fail"
		if res.Pass {
			result = "pass"
			t := res.Started
			rec.LastPass = &t
		}
		d.counts[[2]string{res.Machine, result}]++
	} else {
		rec.LastBootTest = &r
	}
	err := d.saveLocked()
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("save drill result", httpapi.LogErr, err)
	}
	if d.changed != nil {
		d.changed()
	}
}

// BootTest handles POST /v1/machines/{m}/boot-test.
func (d *Drills) BootTest(w http.ResponseWriter, r *http.Request) error {
	m, err := d.f.m.Param(r)
	if err != nil {
		return err
	}
	var req api.BootTestRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	res, err := d.bootTest(r.Context(), m, req, false)
	if err != nil {
		return err
	}
	d.record(res)
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// drillRequest is the boot test of a drill.
func drillRequest(p api.DrillPolicy) api.BootTestRequest {
	return api.BootTestRequest{Point: api.PointLatest, Net: p.Net, GuestPort: p.GuestPort, Ready: p.Ready,
		TimeoutSeconds: p.TimeoutSeconds, Verify: p.Verify}
}

// RunDrill runs a machine's drill now, after any drill running, and
// records it. Whatever fails is a failed drill with the reason.
func (d *Drills) RunDrill(ctx context.Context, m string) api.BootResult {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	return d.runLocked(ctx, m)
}

// runDue runs a machine's drill if it is still due once the running
// drill (of a run-now, say) ended.
func (d *Drills) runDue(ctx context.Context, m string) {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if slices.Contains(d.due(time.Now()), m) {
		d.runLocked(ctx, m)
	}
}

// runLocked runs a drill; d.runMu is held.
func (d *Drills) runLocked(ctx context.Context, m string) api.BootResult {
	d.mu.Lock()
	var p api.DrillPolicy
	if rec := d.recs[m]; rec != nil {
		p = rec.Policy
	}
	d.running[m] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.running, m)
		d.mu.Unlock()
	}()
	start := time.Now()
	d.log.Info("drill started", httpapi.LogComponent, "config", httpapi.LogMachine, m, "priority", boot.Priority)
	res, err := d.bootTest(ctx, m, drillRequest(p), true)
	if err != nil {
		res.Pass = false
		res.Reason = drillError(err)
		res.Machine, res.Drill = m, true
		if res.Started.IsZero() {
			res.Started = start.UTC()
		}
		res.TotalSeconds = time.Since(start).Seconds()
	}
	if ctx.Err() != nil && !res.Pass {
		// Stopped by the server's shutdown: not a result.
		return res
	}
	d.record(res)
	lvl := slog.LevelInfo
	if !res.Pass {
		lvl = slog.LevelWarn
	}
	d.log.Log(ctx, lvl, "drill done", httpapi.LogComponent, "config", httpapi.LogMachine, m, "point", res.Point.ID,
		"pass", res.Pass, "reason", res.Reason, "boot_to_ready", res.BootToReadySeconds, "total", res.TotalSeconds)
	return res
}

// drillError is an error with its remedy.
func drillError(err error) string {
	var he *httpapi.Error
	if errors.As(err, &he) {
		if he.Remedy != "" {
			return he.Msg + " (" + he.Remedy + ")"
		}
		return he.Msg
	}
	return err.Error()
}

// Run runs the due drills, one at a time, until ctx ends.
func (d *Drills) Run(ctx context.Context) {
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		for _, m := range d.due(time.Now()) {
			if ctx.Err() != nil {
				return
			}
			d.runDue(ctx, m)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// next is when a machine's next drill is due: at once after the policy
// is set, then an interval after the last drill started.
func next(rec *drillRecord) (time.Time, bool) {
	iv := time.Duration(rec.Policy.IntervalSeconds * float64(time.Second))
	if iv <= 0 || rec.Since == nil {
		return time.Time{}, false
	}
	if rec.LastDrill == nil || rec.LastDrill.Started.Before(*rec.Since) {
		return *rec.Since, true
	}
	return rec.LastDrill.Started.Add(iv), true
}

// due lists the machines whose drill is due at now.
func (d *Drills) due(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for m, rec := range d.recs {
		if n, ok := next(rec); ok && !n.After(now) && !d.running[m] {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Statuses returns every machine's drill status, sorted by machine.
func (d *Drills) Statuses() []api.DrillStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []api.DrillStatus{}
	for m := range d.recs {
		out = append(out, d.statusLocked(m))
	}
	slices.SortFunc(out, func(a, b api.DrillStatus) int { return strings.Compare(a.Machine, b.Machine) })
	return out
}

func (d *Drills) statusLocked(m string) api.DrillStatus {
	st := api.DrillStatus{Machine: m, Running: d.running[m]}
	if rec := d.recs[m]; rec != nil {
		st.Policy, st.Since, st.LastDrill, st.LastPass, st.LastBootTest = rec.Policy, rec.Since, rec.LastDrill, rec.LastPass, rec.LastBootTest
		if n, ok := next(rec); ok {
			st.Next = &n
		}
	}
	return st
}

// List handles GET /v1/drills.
func (d *Drills) List(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, d.Statuses())
	return nil
}

// Get handles GET /v1/machines/{m}/drill.
func (d *Drills) Get(w http.ResponseWriter, r *http.Request) error {
	m, err := d.f.m.Param(r)
	if err != nil {
		return err
	}
	d.mu.Lock()
	st := d.statusLocked(m)
	d.mu.Unlock()
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// checkDrillPolicy validates a drill policy.
func checkDrillPolicy(p api.DrillPolicy) error {
	if p.IntervalSeconds < 0 || p.IntervalSeconds > 0 && p.IntervalSeconds < MinDrillInterval.Seconds() {
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("drill interval %gs is too short", p.IntervalSeconds),
			"give --interval of at least 1m (24h is usual), or 0 to turn the drills off")
	}
	_, err := checkBootRequest(drillRequest(p))
	return err
}

// Put handles PUT /v1/machines/{m}/drill.
func (d *Drills) Put(w http.ResponseWriter, r *http.Request) error {
	m, err := d.f.m.Param(r)
	if err != nil {
		return err
	}
	var p api.DrillPolicy
	if err := httpapi.DecodeJSON(w, r, 64<<10, &p); err != nil {
		return err
	}
	if err := checkDrillPolicy(p); err != nil {
		return err
	}
	now := time.Now().UTC()
	d.mu.Lock()
	rec := d.recs[m]
	if rec == nil {
		rec = &drillRecord{}
		d.recs[m] = rec
	}
	rec.Policy = p
	rec.Since = &now
	if err := d.saveLocked(); err != nil {
		d.mu.Unlock()
		return err
	}
	st := d.statusLocked(m)
	d.mu.Unlock()
	d.log.Info("drill policy set", httpapi.LogComponent, "config", httpapi.LogMachine, m, "interval_seconds", p.IntervalSeconds, "verify", p.Verify)
	if d.changed != nil {
		d.changed()
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// RunNow handles POST /v1/machines/{m}/drill/run: the drill runs with the
// machine's policy (drills off: its verify, ready and timeout still
// apply) and the answer waits for it.
func (d *Drills) RunNow(w http.ResponseWriter, r *http.Request) error {
	m, err := d.f.m.Param(r)
	if err != nil {
		return err
	}
	d.RunDrill(r.Context(), m)
	if err := r.Context().Err(); err != nil {
		return err
	}
	d.mu.Lock()
	st := d.statusLocked(m)
	d.mu.Unlock()
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
