package configsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
)

// DefaultScriptTimeout bounds a plan's script when the plan sets no
// timeout.
const DefaultScriptTimeout = 10 * time.Minute

// Environment variables a plan's scripts get.
const (
	EnvPlan     = "LIFEBOAT_PLAN"
	EnvGroup    = "LIFEBOAT_GROUP"
	EnvOut      = "LIFEBOAT_OUT"
	EnvTest     = "LIFEBOAT_TEST"
	EnvMachines = "LIFEBOAT_MACHINES"
)

// PlansDir holds one JSON file per recovery plan (DataDir/plans).
const PlansDir = "plans"

// Failover is what a plan needs of the machines and their failover.
type Failover interface {
	// Names lists, sorted, every machine registered or with data.
	Names(ctx context.Context) ([]string, error)
	// Failover fails over (or test-fails over) one machine.
	Failover(ctx context.Context, m string, req api.FailoverRequest) (api.FailoverResult, error)
}

// Plans owns the recovery plans (DataDir/plans/) and runs them: the
// machines group by group, the scripts between groups.
type Plans struct {
	dir     string
	log     *slog.Logger
	machine Failover

	plansMu sync.Mutex // plan files

	mu      sync.Mutex
	running map[string]bool // plans being run
}

// NewPlans returns the plans of the data directory dataDir.
func NewPlans(dataDir string, m Failover, log *slog.Logger) *Plans {
	if log == nil {
		log = slog.Default()
	}
	return &Plans{dir: dataDir, log: log, machine: m, running: map[string]bool{}}
}

// planDir is DataDir/plans.
func (s *Plans) planDir() *recdir.Dir[api.Plan] {
	return recdir.New[api.Plan](filepath.Join(s.dir, PlansDir), api.ValidName)
}

// planParam returns the plan name of the URL, checked.
func planParam(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := api.ValidName(name); err != nil {
		return "", httpapi.Errorf(http.StatusBadRequest, "bad plan name: "+err.Error(), "plan names are [A-Za-z0-9._-]{1,63}")
	}
	return name, nil
}

// loadPlan reads DATA/plans/<name>.json.
func (s *Plans) loadPlan(name string) (api.Plan, error) {
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	return s.readPlan(name)
}

func (s *Plans) readPlan(name string) (api.Plan, error) {
	p, err := s.planDir().Get(name)
	var ce *recdir.CorruptError
	switch {
	case errors.Is(err, recdir.ErrNotFound):
		return p, httpapi.Errorf(http.StatusNotFound, "no plan "+strconv.Quote(name), "'lifeboat plan list' lists the plans")
	case errors.As(err, &ce):
		return p, &httpapi.Error{Status: http.StatusInternalServerError, Msg: "plan file " + ce.File + " is damaged",
			Remedy: "fix or delete the file and create the plan again", Err: ce.Err}
	case err != nil:
		return p, fmt.Errorf("read plan: %w", err)
	}
	p.Name = name
	return p, nil
}

// List handles GET /v1/plans.
func (s *Plans) List(w http.ResponseWriter, r *http.Request) error {
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	names, err := s.planDir().Names()
	if err != nil {
		return fmt.Errorf("list plans: %w", err)
	}
	out := []api.Plan{}
	for _, name := range names {
		p, err := s.readPlan(name)
		if err != nil {
			return err
		}
		out = append(out, p)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Get handles GET /v1/plans/{name}.
func (s *Plans) Get(w http.ResponseWriter, r *http.Request) error {
	name, err := planParam(r)
	if err != nil {
		return err
	}
	p, err := s.loadPlan(name)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
	return nil
}

// Delete handles DELETE /v1/plans/{name}.
func (s *Plans) Delete(w http.ResponseWriter, r *http.Request) error {
	name, err := planParam(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	running := s.running[name]
	s.mu.Unlock()
	if running {
		return httpapi.Errorf(http.StatusConflict, "plan "+name+" is running", "wait until it ends")
	}
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	p, err := s.readPlan(name)
	if err != nil {
		return err
	}
	if err := s.planDir().Delete(name); err != nil {
		return fmt.Errorf("delete plan: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
	return nil
}

// checkScript checks that a plan's script can be run.
func checkScript(path string) error {
	const hint = "a script is an absolute path of an executable file on the server host"
	if !filepath.IsAbs(path) {
		return httpapi.Errorf(http.StatusBadRequest, "script "+strconv.Quote(path)+" is not an absolute path", hint)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "script " + path + ": " + err.Error(), Remedy: hint, Err: err}
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return httpapi.Errorf(http.StatusBadRequest, "script "+path+" is not an executable file", hint+" (chmod +x)")
	}
	return nil
}

// Create handles POST /v1/plans.
func (s *Plans) Create(w http.ResponseWriter, r *http.Request) error {
	var p api.Plan
	if err := httpapi.DecodeJSON(w, r, 1<<20, &p); err != nil {
		return err
	}
	if err := api.ValidName(p.Name); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad plan name: "+err.Error(), "plan names are [A-Za-z0-9._-]{1,63}")
	}
	if len(p.Groups) == 0 {
		return httpapi.Errorf(http.StatusBadRequest, "a plan needs at least one group", "give --group M1,M2 (repeat it for each group, in order)")
	}
	known, err := s.machine.Names(r.Context())
	if err != nil {
		return err
	}
	seen := map[string]int{}
	for i, g := range p.Groups {
		if len(g) == 0 {
			return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("group %d is empty", i+1), "each --group names at least one machine")
		}
		for _, m := range g {
			if err := api.ValidName(m); err != nil {
				return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("group %d: bad machine name: %v", i+1, err), "'lifeboat machines' lists the machines")
			}
			if j, dup := seen[m]; dup {
				return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("machine %s is in group %d and in group %d", m, j, i+1), "put each machine in one group")
			}
			seen[m] = i + 1
			if !slices.Contains(known, m) {
				return httpapi.Errorf(http.StatusNotFound, fmt.Sprintf("group %d: unknown machine %q", i+1, m), "'lifeboat machines' lists the machines")
			}
		}
	}
	if p.Scripts == nil {
		p.Scripts = []api.PlanScript{}
	}
	for _, sc := range p.Scripts {
		if sc.AfterGroup < 1 || sc.AfterGroup > len(p.Groups) {
			return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("script %s after group %d: the plan has groups 1 to %d", sc.Path, sc.AfterGroup, len(p.Groups)),
				"give --script-after-group N=PATH with N a group number")
		}
		if err := checkScript(sc.Path); err != nil {
			return err
		}
	}
	if p.ScriptTimeoutSeconds < 0 {
		return httpapi.Errorf(http.StatusBadRequest, "negative script timeout", "give --script-timeout as a positive duration")
	}
	if p.ScriptTimeoutSeconds == 0 {
		p.ScriptTimeoutSeconds = int64(DefaultScriptTimeout / time.Second)
	}
	p.Created = time.Now().UTC()
	s.plansMu.Lock()
	defer s.plansMu.Unlock()
	pd := s.planDir()
	if exists, err := pd.Exists(p.Name); err != nil {
		return fmt.Errorf("save plan: %w", err)
	} else if exists {
		return httpapi.Errorf(http.StatusConflict, "plan "+p.Name+" already exists", "'lifeboat plan delete "+p.Name+"' first, or choose another name")
	}
	if err := pd.Put(p.Name, p); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	s.log.With(httpapi.LogComponent, "config", "plan", p.Name).Info("plan created", "groups", len(p.Groups), "scripts", len(p.Scripts))
	httpapi.WriteJSON(w, http.StatusOK, p)
	return nil
}

// Test handles POST /v1/plans/{name}/test.
func (s *Plans) Test(w http.ResponseWriter, r *http.Request) error {
	return s.planHandler(w, r, true)
}

// Run handles POST /v1/plans/{name}/run.
func (s *Plans) Run(w http.ResponseWriter, r *http.Request) error {
	return s.planHandler(w, r, false)
}

func (s *Plans) planHandler(w http.ResponseWriter, r *http.Request, test bool) error {
	name, err := planParam(r)
	if err != nil {
		return err
	}
	var req api.PlanRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if req.Point == "" {
		req.Point = api.PointLatest
	}
	if req.Point != api.PointLatest && req.Point != api.PointLatestApp {
		return httpapi.Errorf(http.StatusBadRequest, "a plan's point is latest or latest-app", "give --point latest or --point latest-app")
	}
	if req.Out == "" || !filepath.IsAbs(req.Out) {
		return httpapi.Errorf(http.StatusBadRequest, "out must be an absolute directory", "give --out DIR: a directory on the server host")
	}
	p, err := s.loadPlan(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.running[name] {
		s.mu.Unlock()
		return httpapi.Errorf(http.StatusConflict, "plan "+name+" is already running", "wait until it ends")
	}
	s.running[name] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, name)
		s.mu.Unlock()
	}()
	res := s.executePlan(r.Context(), p, req, test)
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// executePlan fails over the machines of a plan group by group (the
// machines of a group in parallel, each into Out/<machine>), running the
// scripts of a group after it. A failed machine or script stops the plan
// after its group; the result says where.
func (s *Plans) executePlan(ctx context.Context, p api.Plan, req api.PlanRequest, test bool) api.PlanResult {
	log := s.log.With(httpapi.LogComponent, "plan", "plan", p.Name)
	res := api.PlanResult{Plan: p.Name, Test: test, Out: req.Out, Point: req.Point, Started: time.Now().UTC(), OK: true, Groups: []api.PlanGroupResult{}}
	defer func() { res.Finished = time.Now().UTC() }()
	log.Info("plan started", "test", test, "out", req.Out, "point", req.Point)
	timeout := time.Duration(p.ScriptTimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = DefaultScriptTimeout
	}
	for gi, group := range p.Groups {
		g := api.PlanGroupResult{Group: gi + 1, Machines: make([]api.PlanMachineResult, len(group)), Scripts: []api.PlanScriptResult{}}
		var wg sync.WaitGroup
		for i, m := range group {
			wg.Go(func() {
				g.Machines[i] = s.planMachine(ctx, m, req, test)
			})
		}
		wg.Wait()
		res.Groups = append(res.Groups, g)
		for _, mr := range g.Machines {
			if !mr.OK {
				res.OK = false
				res.Stopped = &api.PlanStop{Group: gi + 1, Machine: mr.Machine, Error: mr.Error, Hint: mr.Hint}
				log.Error("plan stopped: failover failed", "group", gi+1, httpapi.LogMachine, mr.Machine, httpapi.LogErr, mr.Error)
				res.Finished = time.Now().UTC()
				return res
			}
		}
		log.Info("group failed over", "group", gi+1, "machines", len(group))
		for _, sc := range p.Scripts {
			if sc.AfterGroup != gi+1 {
				continue
			}
			sr := runScript(ctx, sc.Path, timeout, req.Out, []string{
				EnvPlan + "=" + p.Name,
				EnvGroup + "=" + strconv.Itoa(gi+1),
				EnvOut + "=" + req.Out,
				EnvTest + "=" + map[bool]string{true: "1", false: "0"}[test],
				EnvMachines + "=" + strings.Join(group, ","),
			})
			res.Groups[gi].Scripts = append(res.Groups[gi].Scripts, sr)
			if sr.Error != "" {
				res.OK = false
				res.Stopped = &api.PlanStop{Group: gi + 1, Script: sc.Path, Error: sr.Error, Hint: sr.Hint}
				log.Error("plan stopped: script failed", "group", gi+1, "script", sc.Path, httpapi.LogErr, sr.Error)
				res.Finished = time.Now().UTC()
				return res
			}
			log.Info("script ran", "group", gi+1, "script", sc.Path)
		}
	}
	res.Finished = time.Now().UTC()
	log.Info("plan finished", "test", test)
	return res
}

// planMachine fails over one machine of a plan into Out/<machine>.
func (s *Plans) planMachine(ctx context.Context, m string, req api.PlanRequest, test bool) api.PlanMachineResult {
	start := time.Now()
	mr := api.PlanMachineResult{Machine: m}
	defer func() { mr.DurationSeconds = time.Since(start).Seconds() }()
	names, err := s.machine.Names(ctx)
	if err == nil && !slices.Contains(names, m) {
		err = httpapi.Errorf(http.StatusNotFound, "unknown machine "+strconv.Quote(m), "'lifeboat machines' lists the machines")
	}
	if err != nil {
		mr.Error, mr.Hint = errorText(err)
		return mr
	}
	fr, err := s.machine.Failover(ctx, m, api.FailoverRequest{Point: req.Point, Test: test, Out: filepath.Join(req.Out, m), Check: req.Check})
	if err != nil {
		mr.Error, mr.Hint = errorText(err)
		return mr
	}
	mr.Failover = &fr
	mr.OK = fr.CheckOK
	if !fr.CheckOK {
		mr.Error = "filesystem check failed"
		for _, c := range fr.Checks {
			if !c.OK {
				mr.Error = fmt.Sprintf("filesystem check failed: %s partition %d (%s): %s", c.Disk, c.Partition, c.Result, c.Summary)
				break
			}
		}
	}
	return mr
}

// errorText is the message and the hint of an error for a result.
func errorText(err error) (msg, hint string) {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Msg, e.Remedy
	}
	return err.Error(), api.Hint(err)
}

// runScript runs a plan's script with a timeout and the plan's
// environment, in dir.
func runScript(ctx context.Context, path string, timeout time.Duration, dir string, env []string) api.PlanScriptResult {
	sr := api.PlanScriptResult{Path: path, ExitStatus: -1, Started: time.Now().UTC()}
	defer func() { sr.DurationSeconds = time.Since(sr.Started).Seconds() }()
	if err := checkScript(path); err != nil {
		sr.Error, sr.Hint = errorText(err)
		return sr
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	ownProcessGroup(cmd)
	err := cmd.Run()
	sr.Output = string(out.b)
	var ee *exec.ExitError
	switch {
	case cctx.Err() != nil && ctx.Err() == nil:
		sr.TimedOut = true
		sr.Error = "killed after the timeout of " + timeout.String()
	case ctx.Err() != nil:
		sr.Error = "canceled"
	case err == nil:
		sr.ExitStatus = 0
	case errors.As(err, &ee):
		sr.ExitStatus = ee.ExitCode()
		sr.Error = "exited with status " + strconv.Itoa(sr.ExitStatus)
		if sr.ExitStatus < 0 {
			sr.Error = ee.String()
		}
	default:
		sr.Error = "cannot run: " + err.Error()
	}
	return sr
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0:0], t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}
