package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// masterTarget is the master-target role: it owns the failback sessions,
// at most one per machine, and runs them on this host (where the
// on-premises disks are). Sessions live in memory: a server restart ends
// them (the next start compares again and sends only what still differs).
type masterTarget struct {
	log *slog.Logger

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

func newMasterTarget(log *slog.Logger) *masterTarget {
	return &masterTarget{log: log, sessions: map[string]*fbSession{}}
}

func (s *Server) requireMasterTarget() error {
	if s.mt == nil {
		return httpapi.Errorf(http.StatusConflict, "this server does not run the master-target role",
			"failback runs on the master target, in the process of the configuration role: run lifeboat-server with --roles config,mastertarget (the default runs every role) on the host of the on-premises disks")
	}
	return nil
}

// startFailback handles POST /v1/machines/{m}/failback.
func (s *Server) startFailback(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireMasterTarget(); err != nil {
		return err
	}
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	var req api.FailbackRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	rec, _ := s.machine(m)
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

	mt := s.mt
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
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &fbSession{machine: m, fb: fb, cancel: cancel, done: make(chan struct{}), started: time.Now().UTC()}
	mt.sessions[m] = sess
	mt.mu.Unlock()
	log.Warn("failback started", "disks", len(disks))

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(sess.done)
		runErr := fb.Run(ctx)
		st := s.failbackStatus(sess)
		if runErr == nil {
			now := time.Now().UTC()
			st.State = api.StateFailedBack
			if err := s.updateMachine(m, func(rec *machineRecord) {
				rec.State = api.StateFailedBack
				rec.Failback = &st
				rec.FailedBack = &now
			}); err != nil {
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
	httpapi.WriteJSON(w, http.StatusOK, s.failbackStatus(sess))
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

// getFailback handles GET /v1/machines/{m}/failback.
func (s *Server) getFailback(w http.ResponseWriter, r *http.Request) error {
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	st := s.currentFailback(m)
	if st == nil {
		return httpapi.Errorf(http.StatusNotFound, "machine "+m+" has no failback", "start one with 'lifeboat failback "+m+" --to DEV'")
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// completeFailback handles POST /v1/machines/{m}/failback/complete: the
// final cut, the last delta, the verification and the switch-back. It
// answers once they are done.
func (s *Server) completeFailback(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireMasterTarget(); err != nil {
		return err
	}
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	sess := s.session(m)
	if sess == nil || !sess.running() {
		if st := s.currentFailback(m); st != nil && st.Phase == api.FailbackDone {
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
	st := s.failbackStatus(sess)
	if st.Phase != api.FailbackDone {
		return httpapi.Errorf(http.StatusInternalServerError, "failback of "+m+" "+st.Phase+": "+st.Error, st.Hint)
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// cancelFailback handles DELETE /v1/machines/{m}/failback: it stops a
// running session; the on-premises disks are left part-written, and the
// machine's state does not change.
func (s *Server) cancelFailback(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireMasterTarget(); err != nil {
		return err
	}
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	sess := s.session(m)
	if sess == nil || !sess.running() {
		return httpapi.Errorf(http.StatusConflict, "no failback of machine "+m+" is running", "nothing to cancel")
	}
	sess.cancel()
	<-sess.done
	httpapi.WriteJSON(w, http.StatusOK, s.failbackStatus(sess))
	return nil
}

func (s *Server) session(m string) *fbSession {
	if s.mt == nil {
		return nil
	}
	s.mt.mu.Lock()
	defer s.mt.mu.Unlock()
	return s.mt.sessions[m]
}

func (f *fbSession) running() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// currentFailback returns the running or last session of a machine, or
// the failback on record, or nil.
func (s *Server) currentFailback(m string) *api.FailbackStatus {
	if sess := s.session(m); sess != nil {
		st := s.failbackStatus(sess)
		return &st
	}
	rec, _ := s.machine(m)
	if rec.Failback != nil {
		st := *rec.Failback
		st.State = rec.state()
		return &st
	}
	return nil
}

// failbackStatus converts the session's status for the API.
func (s *Server) failbackStatus(sess *fbSession) api.FailbackStatus {
	sess.mu.Lock()
	final := sess.final
	sess.mu.Unlock()
	if final != nil {
		st := *final
		rec, _ := s.machine(sess.machine)
		st.State = rec.state()
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
	rec, _ := s.machine(sess.machine)
	st.State = rec.state()
	if sess.running() && st.State != api.StateFailedBack {
		st.State = api.StateFailingBack
	}
	return st
}

// failedBackError is the process role's answer to the old source of a
// machine that has failed back: its disks now hold the recovered data, so
// what its agent would send predates them.
func failedBackError(m string, rec machineRecord) *httpapi.Error {
	when := "?"
	if rec.FailedBack != nil {
		when = rec.FailedBack.UTC().Format(time.RFC3339)
	}
	return httpapi.Errorf(http.StatusGone, fmt.Sprintf("machine %s failed back at %s: its old protection has ended", m, when),
		"register the agent again to protect the failed-back disks: it then resyncs against the replica, sending only blocks that differ")
}
