package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// ScriptResult is one run of an app-consistency script.
type ScriptResult struct {
	Script   string  `json:"script"`
	Phase    string  `json:"phase"` // "pre" or "post"
	Exit     int     `json:"exit"`  // -1: did not finish (timeout, not runnable)
	Seconds  float64 `json:"seconds"`
	Output   string  `json:"output,omitempty"` // the last lines
	TimedOut bool    `json:"timed_out,omitempty"`
}

// appNote is the NOTE text of an app-consistent point.
type appNote struct {
	Scripts     []ScriptResult `json:"scripts"`
	Filesystems []string       `json:"filesystems"`
	FreezeMS    float64        `json:"freeze_ms"`
	// Where the freeze time went: FIFREEZE of every filesystem (it
	// writes out what is dirty), the tracker cut, the read of what the
	// freeze flushed (FrozenReadBytes of it) and FITHAW.
	FreezeIoctlMS float64 `json:"freeze_ioctl_ms"`
	// ExpeditedRCU: RCU grace periods were expedited during the freeze.
	ExpeditedRCU    bool    `json:"expedited_rcu,omitempty"`
	CutMS           float64 `json:"cut_ms"`
	FrozenReadMS    float64 `json:"frozen_read_ms"`
	FrozenReadBytes int64   `json:"frozen_read_bytes"`
	ThawMS          float64 `json:"thaw_ms"`
	Attempt         int     `json:"attempt,omitempty"`
	// Group and Machines name the group of a group point (Machines:
	// in the coordinator's note).
	Group    string   `json:"group,omitempty"`
	Machines []string `json:"machines,omitempty"`
}

// scripts lists the executable files of dir, by name.
func scripts(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scripts directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Mode()&0o111 == 0 {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// runScript runs one script with "pre" or "post", within timeout.
func runScript(ctx context.Context, path, phase string, timeout time.Duration, env []string) ScriptResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, path, phase)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := ScriptResult{Script: filepath.Base(path), Phase: phase, Seconds: time.Since(start).Seconds(), Output: lastLines(out.String(), 5)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() == context.DeadlineExceeded:
		r.Exit, r.TimedOut = -1, true
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	default:
		r.Exit = -1
		r.Output = err.Error()
	}
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > 512 {
		out = out[len(out)-512:]
	}
	return out
}

func noteText(n appNote) string {
	b, _ := json.Marshal(n)
	if len(b) > 4000 {
		n.Scripts = nil
		b, _ = json.Marshal(n)
	}
	return string(b)
}

// The phases of a point that freezes filesystems, shared by
// app-consistent points and group points (group.go):
// prepare (pre-scripts, syncfs and rounds that drain what is dirty) →
// freeze (FIFREEZE) → cut (tracker cut and the read of what the freeze
// flushed) → thaw (FITHAW) → post (post-scripts). The round after the
// thaw validates the reads made while frozen (Agent.round, a.app).
type phases struct {
	a     *Agent
	att   *appAttempt
	mnts  []string
	ran   []string // pre-scripts that ran, for their post
	env   []string
	fz    func() error // thaws what is frozen; nil: nothing is
	start time.Time
	// unexpedite restores /sys/kernel/rcu_expedited after the freeze.
	unexpedite func()
	// backlog: the cut's round left work for the next round.
	backlog bool
	posted  bool
}

// diskPaths returns the protected devices.
func (a *Agent) diskPaths() []string {
	out := make([]string, len(a.disks))
	for i, d := range a.disks {
		out[i] = d.path
	}
	return out
}

// journaledBytes is the data journaled so far, on all disks.
func (a *Agent) journaledBytes() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n int64
	for _, d := range a.disks {
		n += d.sent
	}
	return n
}

// restoreRCU undoes expediteRCU, once.
func (p *phases) restoreRCU() {
	if p.unexpedite != nil {
		p.unexpedite()
		p.unexpedite = nil
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// errTooBusy: after draining, more is left to read than a freeze may
// cover; the point is tried again.
type errTooBusy struct{ pending int64 }

func (e *errTooBusy) Error() string {
	return fmt.Sprintf("the disks change too fast to freeze briefly (%d bytes still to read after flushing)", e.pending)
}

// errRound is a failed replication round during a point's phases: the
// loop's round error, not only the point's.
type errRound struct{ err error }

func (e *errRound) Error() string { return e.err.Error() }
func (e *errRound) Unwrap() error { return e.err }

func (a *Agent) newPhases(att *appAttempt) *phases {
	return &phases{a: a, att: att, env: []string{"LIFEBOAT_MACHINE=" + a.cfg.Machine, "LIFEBOAT_POINT_ID=" + att.id}}
}

// prepare finds the filesystems, runs the pre-scripts and drains what is
// dirty until little is left to read during the freeze. On error the
// post-scripts of what ran have run.
func (p *phases) prepare(ctx context.Context) error {
	a := p.a
	mnts, err := a.fz.filesystems(a.diskPaths())
	if err != nil {
		return fmt.Errorf("find the filesystems: %w", err)
	}
	p.mnts = mnts
	p.att.note.Filesystems = mnts
	list, err := scripts(a.cfg.ScriptsDir)
	if err != nil {
		return err
	}
	for _, sc := range list {
		r := runScript(ctx, sc, "pre", a.cfg.ScriptTimeout, p.env)
		p.att.note.Scripts = append(p.att.note.Scripts, r)
		if r.Exit != 0 {
			p.post(ctx)
			return fmt.Errorf("pre-script %s failed (exit %d, timed out %v): %s", r.Script, r.Exit, r.TimedOut, r.Output)
		}
		p.ran = append(p.ran, sc)
	}
	// Flush and collect what is dirty, until little is left: what remains
	// is read during the freeze.
	var pending int64
	for i := 0; i < 8; i++ {
		a.fz.syncFS(mnts)
		t0 := time.Now()
		if _, err := a.round(ctx, 0, time.Time{}); err != nil {
			p.post(ctx)
			return &errRound{err}
		}
		pending = a.unread()
		if pending < maxFrozenRead/4 && time.Since(t0) < 50*time.Millisecond {
			break
		}
	}
	if pending > maxFrozenRead {
		p.post(ctx)
		return &errTooBusy{pending}
	}
	return nil
}

// freeze freezes the filesystems; on error none stays frozen.
func (p *phases) freeze() error {
	if p.a.cfg.ExpediteFreeze {
		p.unexpedite = p.a.fz.expediteRCU(p.a.log)
		p.att.note.ExpeditedRCU = p.unexpedite != nil
	}
	p.start = time.Now()
	thaw, err := p.a.fz.freeze(p.mnts)
	if err != nil {
		p.restoreRCU()
		return err
	}
	p.fz = thaw
	p.att.note.FreezeIoctlMS = ms(time.Since(p.start))
	return nil
}

// cut cuts the tracker and reads what the freeze flushed before thawing:
// a thaw rewrites filesystem metadata (ext4's superblock, xfs's log) that
// the frozen, clean state needs. The drain of prepare keeps this read to
// a few milliseconds; everything else is read with the filesystems
// thawed.
func (p *phases) cut(ctx context.Context) error {
	p.att.at = time.Now()
	gen, err := p.a.tr.Cut(ctx)
	if err != nil {
		return fmt.Errorf("cut: %w", err)
	}
	t0 := time.Now()
	p.att.note.CutMS = ms(t0.Sub(p.att.at))
	p.att.gen = gen
	sent := p.a.journaledBytes()
	p.backlog, err = p.a.round(ctx, gen, p.att.at)
	if err != nil {
		return &errRound{err}
	}
	p.att.note.FrozenReadMS = ms(time.Since(t0))
	p.att.note.FrozenReadBytes = p.a.journaledBytes() - sent
	return nil
}

// thaw thaws what is frozen and records the freeze time; it is safe to
// call when nothing is frozen.
func (p *phases) thaw() error {
	if p.fz == nil {
		return nil
	}
	t0 := time.Now()
	err := p.fz()
	p.fz = nil
	p.att.note.ThawMS = ms(time.Since(t0))
	p.restoreRCU()
	p.att.freeze = time.Since(p.start)
	p.att.note.FreezeMS = float64(p.att.freeze.Microseconds()) / 1000
	if err != nil {
		p.a.log.Error("thaw failed: filesystems may stay frozen", "err", err)
		return api.WithHint(err, "run fsfreeze --unfreeze on them")
	}
	return nil
}

// post runs the post-scripts of the pre-scripts that ran, in reverse
// order, once.
func (p *phases) post(ctx context.Context) {
	if p.posted {
		return
	}
	p.posted = true
	for i := len(p.ran) - 1; i >= 0; i-- {
		r := runScript(ctx, p.ran[i], "post", p.a.cfg.ScriptTimeout, p.env)
		p.att.note.Scripts = append(p.att.note.Scripts, r)
		if r.Exit != 0 {
			p.a.log.Warn("post-script failed", "script", r.Script, "exit", r.Exit, "output", r.Output)
		}
	}
}

// abort thaws (if frozen) and runs the post-scripts.
func (p *phases) abort(ctx context.Context) error {
	err := p.thaw()
	p.post(ctx)
	return err
}

// appRound takes an app-consistent cut: pre-scripts, a sync and a round to
// drain what is dirty, the freeze, the cut, the thaw, post-scripts, then a
// round that reads what changed before the cut. The next round validates
// those reads; the freeze never covers a read.
func (a *Agent) appRound(ctx context.Context) (bool, error) {
	att := &appAttempt{id: newPointID(), kind: hrlfmt.CutApp}
	att.note.Attempt = a.appTries + 1
	ph := a.newPhases(att)
	if err := ph.prepare(ctx); err != nil {
		var re *errRound
		var busy *errTooBusy
		switch {
		case errors.As(err, &re):
			return false, re.err
		case errors.As(err, &busy):
			a.appTries++
			if a.appTries >= a.cfg.MaxAppAttempts {
				a.failApp(fmt.Errorf("app-consistent point: %w", err))
			} else {
				a.appDue = time.Now().Add(time.Second)
			}
		default:
			a.failApp(fmt.Errorf("app-consistent point: %w", err))
		}
		return false, nil
	}
	if err := ph.freeze(); err != nil {
		ph.post(ctx)
		a.failApp(fmt.Errorf("app-consistent point: %w", err))
		return false, nil
	}
	cutErr := ph.cut(ctx)
	thawErr := ph.thaw()
	ph.post(ctx)
	var re *errRound
	switch {
	case thawErr != nil:
		a.failApp(fmt.Errorf("app-consistent point: %w", thawErr))
		return false, nil
	case errors.As(cutErr, &re):
		return false, re.err
	case cutErr != nil:
		a.failApp(fmt.Errorf("app-consistent point: %w", cutErr))
		return false, nil
	}
	// The next round validates the reads made while frozen.
	a.app = att
	return ph.backlog, nil
}

// maxFrozenRead bounds what an app-consistent point reads while frozen.
const maxFrozenRead = 4 << 20

// unread returns the bytes changed and not read yet, on all disks.
func (a *Agent) unread() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n int64
	for _, d := range a.disks {
		n += a.rounds.Pending(d.name) + a.rounds.Unfolded(d.name)
	}
	return n
}

func (a *Agent) writeAppPoint(app *appAttempt) error {
	note := hrlfmt.Note{PointID: app.id, Freeze: app.freeze, Text: noteText(app.note)}
	p, err := a.writeCut(app.id, hrlfmt.CutApp, app.gen-1, app.at, &note)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lastPoint, a.lastApp, a.appErr = p, p, ""
	a.freezes.add(app.freeze)
	a.counts.observe(func(h *histograms) { h.freeze.WithLabelValues("app").Observe(app.freeze.Seconds()) })
	a.mu.Unlock()
	for _, w := range a.appWaiting {
		w.resp <- pointResult{p: p}
	}
	a.appWaiting = nil
	a.appTries = 0
	a.appDue = a.nextApp()
	a.log.Info("app-consistent point", "id", p.ID, "gen", p.Gen, "freeze", app.freeze, "filesystems", app.note.Filesystems)
	return a.save()
}

func (a *Agent) failApp(err error) {
	a.mu.Lock()
	a.appErr = err.Error()
	a.mu.Unlock()
	a.log.Warn("app-consistent point failed", "err", err)
	for _, w := range a.appWaiting {
		w.resp <- pointResult{err: err}
	}
	a.appWaiting = nil
	a.appTries = 0
	a.appDue = a.nextApp()
}

func (a *Agent) nextApp() time.Time {
	if a.cfg.AppInterval < 0 {
		return time.Time{}
	}
	return time.Now().Add(a.cfg.AppInterval)
}
