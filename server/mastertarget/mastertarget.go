package mastertarget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// goos is the system the role runs on (a variable for the test of the
// refusal).
var goos = runtime.GOOS

// UnsupportedError is the refusal to run the role on a system where
// failback cannot run: it tracks the recovered disks with the Linux eBPF
// tracker (recovery.Failback).
type UnsupportedError struct {
	// GOOS is the system.
	GOOS string
}

func (e *UnsupportedError) Error() string {
	return "the master-target role cannot run on " + e.GOOS
}

// Hint tells the operator what to do.
func (e *UnsupportedError) Hint() string {
	return "the master-target role needs Linux: run it on a Linux server (--roles mastertarget there), and leave it out of --roles here"
}

// Supported reports whether the role can run on this system.
func Supported() bool { return goos == "linux" }

// Machine is what the master target reads of a machine's record.
type Machine struct {
	// State is the machine's state as the API names it.
	State string
	// Failover is the last real failover, while failed over or
	// committed.
	Failover *api.FailoverRecord
	// Failback is the completed failback on record.
	Failback *api.FailbackStatus
}

// Machines is what the master target needs of the configuration role's
// machine records.
type Machines interface {
	// MachineParam returns the machine of an admin URL ({m}), which must
	// be known, or an *httpapi.Error.
	MachineParam(r *http.Request) (string, error)
	// FailbackMachine returns what the record of machine m says.
	FailbackMachine(m string) Machine
	// SetFailedBack records that machine m failed back at at.
	SetFailedBack(m string, st api.FailbackStatus, at time.Time) error
}

// Options configures a MasterTarget.
type Options struct {
	// Log; nil means slog.Default().
	Log      *slog.Logger
	Machines Machines
}

// MasterTarget is the master-target role: it owns the failback sessions,
// at most one per machine, and runs them on this host (where the
// on-premises disks are). Sessions live in memory: a server restart ends
// them (the next start compares again and sends only what still differs).
type MasterTarget struct {
	log      *slog.Logger
	machines Machines

	ctx    context.Context // of the sessions
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*fbSession
}

// fbSession is the failback of one machine.
type fbSession struct {
	machine string
	fb      *recovery.Failback
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time

	mu    sync.Mutex
	final *api.FailbackStatus // set once it ended
}

// New starts the role; on a system where failback cannot run it refuses
// with an *UnsupportedError. Close stops it.
func New(o Options) (*MasterTarget, error) {
	if !Supported() {
		return nil, &UnsupportedError{GOOS: goos}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	mt := &MasterTarget{log: o.Log, machines: o.Machines, sessions: map[string]*fbSession{}}
	mt.ctx, mt.cancel = context.WithCancel(context.Background())
	return mt, nil
}

// Close cancels the running sessions and waits for them to end.
func (mt *MasterTarget) Close() {
	mt.cancel()
	mt.wg.Wait()
}

// API serves the failback endpoints of the configuration role's admin
// API. MT is nil when this server does not run the role: then a failback
// cannot start, and only the failbacks on record are shown.
type API struct {
	MT       *MasterTarget
	Machines Machines
}

func (a *API) requireMasterTarget() error {
	if a.MT == nil {
		return httpapi.Errorf(http.StatusConflict, "this server does not run the master-target role",
			"failback runs on the master target, in the process of the configuration role: run lifeboat-server with --roles config,mastertarget (the default runs every role) on the host of the on-premises disks")
	}
	return nil
}

// Start handles POST /v1/machines/{m}/failback.
func (a *API) Start(w http.ResponseWriter, r *http.Request) error {
	if err := a.requireMasterTarget(); err != nil {
		return err
	}
	m, err := a.Machines.MachineParam(r)
	if err != nil {
		return err
	}
	var req api.FailbackRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	rec := a.Machines.FailbackMachine(m)
	switch rec.State {
	case api.StateFailedOver, api.StateCommitted:
	case api.StateFailedBack:
		return httpapi.Errorf(http.StatusConflict, "machine "+m+" has already failed back",
			"register its agent again to protect it anew; a new failback needs a new failover")
	default:
		return httpapi.Errorf(http.StatusConflict, "machine "+m+" has not failed over",
			"failback follows a real failover: 'lifeboat failover "+m+" --point ID|latest --out DIR' (without --test)")
	}
	if rec.Failover == nil || len(rec.Failover.Images) == 0 {
		return httpapi.Errorf(http.StatusConflict, "machine "+m+" has no failover images on record", "fail it over again: 'lifeboat failover "+m+" --point latest --out DIR'")
	}
	disks, err := failbackDisks(m, rec.Failover.Images, req.Disks)
	if err != nil {
		return err
	}
	interval := time.Second
	if req.IntervalSeconds < 0 || req.IntervalSeconds > 3600 {
		return httpapi.Errorf(http.StatusBadRequest, "interval_seconds must be between 0 and 3600", "leave it out for the default of 1 s")
	} else if req.IntervalSeconds > 0 {
		interval = time.Duration(req.IntervalSeconds * float64(time.Second))
	}

	mt := a.MT
	mt.mu.Lock()
	if old := mt.sessions[m]; old != nil && old.running() {
		mt.mu.Unlock()
		return httpapi.Errorf(http.StatusConflict, "a failback of machine "+m+" is already running",
			"'lifeboat failback "+m+"' shows it; finish it with --complete, or stop it with --cancel")
	}
	log := mt.log.With(httpapi.LogMachine, m)
	fb, err := recovery.StartFailback(recovery.FailbackConfig{Disks: disks, Interval: interval, Log: log})
	if err != nil {
		mt.mu.Unlock()
		return failbackError(err)
	}
	ctx, cancel := context.WithCancel(mt.ctx)
	sess := &fbSession{machine: m, fb: fb, cancel: cancel, done: make(chan struct{}), started: time.Now().UTC()}
	mt.sessions[m] = sess
	mt.mu.Unlock()
	log.Warn("failback started", "disks", len(disks))

	mt.wg.Add(1)
	go func() {
		defer mt.wg.Done()
		defer close(sess.done)
		runErr := fb.Run(ctx)
		st := mt.status(sess)
		if runErr == nil {
			now := time.Now().UTC()
			st.State = api.StateFailedBack
			if err := mt.machines.SetFailedBack(m, st, now); err != nil {
				runErr = err
				st.Phase, st.Error, st.Hint = api.FailbackFailed, "record the switch-back: "+err.Error(), "the disks are equal; see the server's log"
			}
		}
		if cerr := fb.Close(); cerr != nil {
			log.Warn("failback: close", httpapi.LogErr, cerr)
		}
		cancel()
		sess.mu.Lock()
		sess.final = &st
		sess.mu.Unlock()
		if runErr != nil {
			log.Error("failback ended", "phase", st.Phase, httpapi.LogErr, runErr)
		} else {
			log.Warn("failback done: switched back", "compared_bytes", st.ComparedBytes, "differ_bytes", st.DifferBytes, "sent_bytes", st.SentBytes)
		}
	}()
	httpapi.WriteJSON(w, http.StatusOK, mt.status(sess))
	return nil
}

// failbackDisks maps the disks of a failover to the devices asked for.
func failbackDisks(m string, imgs []api.Image, req []api.FailbackDiskRequest) ([]recovery.FailbackDisk, error) {
	if len(req) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, "no target disk given", "give --to DEV (or --to DISK=DEV for each disk of a machine with several)")
	}
	names := make([]string, len(imgs))
	for i, im := range imgs {
		names[i] = im.Disk
	}
	byDisk := map[string]api.FailbackDiskRequest{}
	for _, d := range req {
		if d.Disk == "" {
			if len(imgs) != 1 {
				return nil, httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("machine %s has %d disks (%s): say which disk each target is for", m, len(imgs), strings.Join(names, ", ")),
					"give --to DISK=DEV for each disk")
			}
			d.Disk = imgs[0].Disk
		}
		if !slices.Contains(names, d.Disk) {
			return nil, httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("machine %s has no disk %q (its disks: %s)", m, d.Disk, strings.Join(names, ", ")), "give --to DISK=DEV with a disk of the machine")
		}
		if _, dup := byDisk[d.Disk]; dup {
			return nil, httpapi.Errorf(http.StatusBadRequest, "disk "+d.Disk+" given twice", "give one --to per disk")
		}
		if d.To == "" || !strings.HasPrefix(d.To, "/") {
			return nil, httpapi.Errorf(http.StatusBadRequest, "disk "+d.Disk+": target must be an absolute device path", "give --to /dev/...")
		}
		if d.From != "" && !strings.HasPrefix(d.From, "/") {
			return nil, httpapi.Errorf(http.StatusBadRequest, "disk "+d.Disk+": --from must be an absolute path", "give --from DISK=/dev/... or leave it out")
		}
		byDisk[d.Disk] = d
	}
	var out []recovery.FailbackDisk
	for _, im := range imgs {
		d, ok := byDisk[im.Disk]
		if !ok {
			return nil, httpapi.Errorf(http.StatusBadRequest, "no target for disk "+im.Disk, "give --to "+im.Disk+"=DEV: every disk of the machine fails back")
		}
		src := d.From
		if src == "" && im.Path == "" {
			return nil, httpapi.Errorf(http.StatusConflict, "disk "+im.Disk+" failed over to a page blob ("+im.URL+"), not to a file here",
				"give --from "+im.Disk+"=PATH: the disk the recovered machine uses, made available on this host")
		}
		if src == "" {
			loop, err := recovery.LoopOf(im.Path)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, &httpapi.Error{Status: http.StatusConflict, Msg: "look for the loop device of " + im.Path, Remedy: "give --from " + im.Disk + "=DEV", Err: err}
			}
			if errors.Is(err, os.ErrNotExist) {
				return nil, httpapi.Errorf(http.StatusConflict, "failover image "+im.Path+" is gone", "give --from "+im.Disk+"=PATH: the disk the recovered machine uses")
			}
			src = loop
			if src == "" {
				src = im.Path
			}
		}
		out = append(out, recovery.FailbackDisk{Name: im.Disk, Source: src, Target: d.To})
	}
	return out, nil
}

// failbackError turns an error of recovery.StartFailback into an answer.
func failbackError(err error) error {
	var fe *recovery.FailbackError
	if errors.As(err, &fe) {
		hint := fe.Remedy
		if hint == "" {
			hint = "see the server's log"
		}
		return &httpapi.Error{Status: http.StatusConflict, Msg: fe.Error(), Remedy: hint}
	}
	return err
}

// Get handles GET /v1/machines/{m}/failback.
func (a *API) Get(w http.ResponseWriter, r *http.Request) error {
	m, err := a.Machines.MachineParam(r)
	if err != nil {
		return err
	}
	st := a.Current(m)
	if st == nil {
		return httpapi.Errorf(http.StatusNotFound, "machine "+m+" has no failback", "start one with 'lifeboat failback "+m+" --to DEV'")
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// Complete handles POST /v1/machines/{m}/failback/complete: the
// final cut, the last delta, the verification and the switch-back. It
// answers once they are done.
func (a *API) Complete(w http.ResponseWriter, r *http.Request) error {
	m, sess, err := a.running(r)
	if err != nil {
		return err
	}
	if sess == nil {
		if st := a.Current(m); st != nil && st.Phase == api.FailbackDone {
			httpapi.WriteJSON(w, http.StatusOK, st)
			return nil
		}
		return httpapi.Errorf(http.StatusConflict, "no failback of machine "+m+" is running", "start one with 'lifeboat failback "+m+" --to DEV'")
	}
	sess.fb.Complete()
	select {
	case <-sess.done:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	st := a.MT.status(sess)
	if st.Phase != api.FailbackDone {
		return httpapi.Errorf(http.StatusInternalServerError, "failback of "+m+" "+st.Phase+": "+st.Error, st.Hint)
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// Cancel handles DELETE /v1/machines/{m}/failback: it stops a
// running session; the on-premises disks are left part-written, and the
// machine's state does not change.
func (a *API) Cancel(w http.ResponseWriter, r *http.Request) error {
	m, sess, err := a.running(r)
	if err != nil {
		return err
	}
	if sess == nil {
		return httpapi.Errorf(http.StatusConflict, "no failback of machine "+m+" is running", "nothing to cancel")
	}
	sess.cancel()
	<-sess.done
	httpapi.WriteJSON(w, http.StatusOK, a.MT.status(sess))
	return nil
}

// running returns the machine of a request to the role and its running
// session, nil if none runs.
func (a *API) running(r *http.Request) (string, *fbSession, error) {
	if err := a.requireMasterTarget(); err != nil {
		return "", nil, err
	}
	m, err := a.Machines.MachineParam(r)
	if err != nil {
		return "", nil, err
	}
	if sess := a.session(m); sess != nil && sess.running() {
		return m, sess, nil
	}
	return m, nil, nil
}

func (a *API) session(m string) *fbSession {
	if a.MT == nil {
		return nil
	}
	a.MT.mu.Lock()
	defer a.MT.mu.Unlock()
	return a.MT.sessions[m]
}

func (f *fbSession) running() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// Current returns the running or last session of a machine, or
// the failback on record, or nil.
func (a *API) Current(m string) *api.FailbackStatus {
	if sess := a.session(m); sess != nil {
		st := a.MT.status(sess)
		return &st
	}
	rec := a.Machines.FailbackMachine(m)
	if rec.Failback != nil {
		st := *rec.Failback
		st.State = rec.State
		return &st
	}
	return nil
}

// status converts the session's status for the API.
func (mt *MasterTarget) status(sess *fbSession) api.FailbackStatus {
	sess.mu.Lock()
	final := sess.final
	sess.mu.Unlock()
	if final != nil {
		st := *final
		st.State = mt.machines.FailbackMachine(sess.machine).State
		return st
	}
	rs := sess.fb.Status()
	st := api.FailbackStatus{
		Machine: sess.machine, Phase: rs.Phase, Started: rs.Started, Passes: rs.Passes,
		Disks: make([]api.FailbackDisk, len(rs.Disks)), Frozen: rs.Frozen, FreezeSeconds: rs.Freeze.Seconds(),
	}
	if st.Frozen == nil {
		st.Frozen = []string{}
	}
	end := time.Now()
	if !rs.Finished.IsZero() {
		f := rs.Finished
		st.Finished, end = &f, f
	}
	st.DurationSeconds = end.Sub(rs.Started).Seconds()
	for i, d := range rs.Disks {
		st.Disks[i] = api.FailbackDisk{
			Disk: d.Name, Source: d.Source, Target: d.Target, Tracked: d.Tracked,
			SizeBytes: d.Size, TargetSizeBytes: d.TargetSize,
			ComparedBytes: d.Compared, DifferBytes: d.Differ, SentBytes: d.Sent, DeltaBytes: d.Delta,
			VerifiedBytes: d.Verified, VerifyFixedBytes: d.VerifyFixed,
		}
		st.ComparedBytes += d.Compared
		st.DifferBytes += d.Differ
		st.SentBytes += d.Sent
	}
	if rs.Err != nil {
		st.Error = rs.Err.Error()
		var fe *recovery.FailbackError
		if errors.As(rs.Err, &fe) {
			st.Hint = fe.Remedy
		}
		if st.Hint == "" {
			st.Hint = "see the server's log; start the failback again: its compare sends only what still differs"
		}
	}
	st.State = mt.machines.FailbackMachine(sess.machine).State
	if sess.running() && st.State != api.StateFailedBack {
		st.State = api.StateFailingBack
	}
	return st
}
