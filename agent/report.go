package agent

import (
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/tracker"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// Status returns the agent's state.
func (a *Agent) Status() Status {
	now := time.Now()
	s := Status{Machine: a.cfg.Machine, Uptime: now.Sub(a.started).Round(time.Second).String(),
		Time: now, Started: a.started, Kernel: a.kernel, BootID: a.bootID}
	ts, terr := a.tr.Stats()
	s.Tracker = trackerStatus(ts, a.cfg.PinDir)
	s.Server.Address = a.processServer()
	if c := a.certificate(); c != nil {
		s.Certificate = &CertStatus{Subject: c.Subject.CommonName, NotAfter: c.NotAfter,
			DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24)}
	}
	a.mu.Lock()
	if a.lastPoint.ID != "" {
		p := a.lastPoint
		s.LastPoint = &p
	}
	if a.lastApp.ID != "" {
		p := a.lastApp
		s.LastApp = &p
	}
	s.Freeze = a.freezes.summary()
	if a.appErr != "" {
		s.Problems = append(s.Problems, Problem{Code: ProblemAppPoint, What: "last app-consistent point failed: " + a.appErr,
			Remedy: "check the scripts' output in the agent's log and that the filesystems can be frozen (fsfreeze); it is retried at the next interval"})
	}
	if a.pointErr != "" {
		s.Problems = append(s.Problems, Problem{Code: ProblemPoint, What: "last point failed: " + a.pointErr,
			Remedy: "points are retried every interval; if writes never pause, take an app-consistent point (it freezes the filesystem briefly)"})
	}
	if a.cutErr != "" {
		s.Problems = append(s.Problems, Problem{Code: ProblemRound, What: "replication round failed: " + a.cutErr, Remedy: "see the agent's log; it retries every second"})
	}
	s.Bandwidth = a.bandwidthStatus()
	s.Group = a.groupStatus()
	if p := a.groupProblem(); p != nil {
		s.Problems = append(s.Problems, *p)
	}
	var backlog int64
	for _, d := range a.disks {
		backlog += d.up.Status().Bytes + d.unsealed.Load()
	}
	mode, why := a.modeLocked(backlog)
	switch {
	case a.spoolFull && a.cfg.SpoolBytes > 0:
		s.Problems = append(s.Problems, Problem{Code: ProblemSpoolFull,
			What:   fmt.Sprintf("spool full (%d of %d bytes): only the dirty set is kept until the process server catches up", backlog, a.cfg.SpoolBytes),
			Remedy: "check the connection to the process server and its cache space (or raise --spool-bytes); nothing is lost, the backlog is sent when there is room"})
	case a.spoolFull:
		s.Problems = append(s.Problems, Problem{Code: ProblemMetadataMode, What: why,
			Remedy: "check the connection to the process server and its cache space; nothing is lost, the changed regions are read when it has caught up " +
				"(to keep points through outages, give the agent a spool on a disk it does not protect: --spool-bytes)"})
	}
	for _, d := range a.disks {
		ds := DiskStatus{Name: d.name, Path: d.path, Size: d.size, State: d.state,
			PendingBytes: a.rounds.Pending(d.name) + a.rounds.Unfolded(d.name) + rangeBytes(d.taking), SentBytes: d.sent, EqualBytes: d.same, Spool: d.up.Status(),
			Mode: mode, ModeReason: why}
		ds.Lag = d.lag.summary()
		if oldest := a.rounds.Oldest(d.name); oldest > 0 {
			ds.Lag.Current = time.Duration(monotonicNow() - oldest).Seconds()
		} else if len(d.lagWait) > 0 {
			ds.Lag.Current = time.Duration(monotonicNow() - d.lagWait[0].oldest).Seconds()
		}
		if d.total > 0 {
			ds.Progress = float64(d.done) / float64(d.total)
		}
		if d.state == StateProtected {
			ds.Progress = 1
		} else {
			sy := &SyncStatus{Reason: d.reason, Started: d.syncStart, TotalBytes: d.total, DoneBytes: d.done}
			sy.Rate, sy.ETA = syncETA(d.syncStart, now, d.syncStartDone, d.done, d.total)
			ds.Sync = sy
		}
		for _, t := range ts.Disks {
			if t.Disk == d.path {
				ds.Tracker = trackerDiskStats(t)
			}
		}
		mergeServer(&s.Server, ds.Spool, len(s.Disks) == 0)
		switch {
		case ds.Spool.Refused == uploader.RefusedRetired:
			s.Problems = append(s.Problems, Problem{Code: ProblemRetired, Disk: d.name, What: d.name + ": " + ds.Spool.LastError,
				Remedy: "this machine was failed over and committed: replication has stopped; to protect it again, move its --state away and register it again"})
		case ds.Spool.LastError != "" && ds.Spool.Connected && ds.Spool.Refused == uploader.RefusedMoved:
			s.Problems = append(s.Problems, Problem{Code: ProblemProcessMoved, Disk: d.name,
				What:   fmt.Sprintf("%s: process server %s does not serve this machine now: %s", d.name, s.Server.Address, ds.Spool.LastError),
				Remedy: "the machine is being moved or was moved to another process server: the agent learns the new one from the configuration server (--server) within seconds; if this lasts, check that the agent reaches the configuration server and see 'lifeboat machines' there"})
		case ds.Spool.LastError != "" && !ds.Spool.Connected:
			s.Problems = append(s.Problems, Problem{Code: ProblemServerUnreachable, Disk: d.name,
				What:   fmt.Sprintf("%s: process server %s unreachable since %s: %s", d.name, s.Server.Address, ds.Spool.ErrorSince.UTC().Format(time.RFC3339), ds.Spool.LastError),
				Remedy: "check the network and that lifeboat-server runs; the agent retries and keeps the journal in its spool"})
		case ds.Spool.Refused == uploader.RefusedCacheFull:
			s.Problems = append(s.Problems, Problem{Code: ProblemSegmentRefused, Disk: d.name, What: d.name + ": process server refused a segment: " + ds.Spool.LastError,
				Remedy: "the process server's cache disk is full: free space in its data directory (cache/) or give it more, and see 'lifeboat machines' there; " +
					"the agent keeps the changes (in memory, then as changed regions) and retries with backoff: nothing is lost, and the agent's state needs no change"})
		case ds.Spool.LastError != "":
			s.Problems = append(s.Problems, Problem{Code: ProblemSegmentRefused, Disk: d.name, What: d.name + ": process server refused a segment: " + ds.Spool.LastError,
				Remedy: "see the server's log; if it persists, reinstall the agent's state (the disk is then resynced)"})
		}
		if d.diverged != "" && d.state == StateResync {
			s.Problems = append(s.Problems, Problem{Code: ProblemDiverged, Disk: d.name, What: d.diverged,
				Remedy: "nothing to do for the data: the resync makes the replica match the disk again; another holder of this machine's key may have sent that segment: if the key may be stolen, have the operator revoke the machine ('lifeboat machines revoke') and register it again"})
		}
		waiting := d.up.WaitingSince()
		if d.up.Throttled() {
			waiting = time.Time{} // slow because of the bandwidth limit, not stalled
		}
		s.Problems = append(s.Problems, stallProblems(ds, d.state, s.Server.Address, waiting, now, a.cfg.StallAlert, a.cfg.LagAlert, s.Bandwidth)...)
		if d.state == StateResync {
			reason := d.reason
			if reason == "" {
				reason = "tracking was interrupted"
			}
			s.Problems = append(s.Problems, Problem{Code: ProblemTrackingGap, Disk: d.name,
				What:   fmt.Sprintf("%s: tracking gap (%s): resync running, %.0f%% compared; no new points until it ends", d.name, reason, 100*ds.Progress),
				Remedy: "nothing to do: the disk is compared with its replica and only blocks that differ are sent; to avoid gaps, stop the agent with SIGTERM, never kill it"})
		} else if ds.Tracker.Lost > 0 && d.state == StateProtected && a.tr.Gap(d.path) != nil {
			s.Problems = append(s.Problems, Problem{Code: ProblemTrackingLost, Disk: d.name, What: d.name + ": the tracker could not record some changes",
				Remedy: "the disk is resynced automatically; raise the bitmap size if the disk grew"})
		}
		s.Disks = append(s.Disks, ds)
	}
	a.mu.Unlock()
	if terr != nil {
		s.Problems = append(s.Problems, Problem{Code: ProblemTracker, What: "tracker: " + terr.Error(), Remedy: "restart the agent; the disks are then resynced"})
	}
	if c := s.Certificate; c != nil {
		switch {
		case !now.Before(c.NotAfter):
			s.Problems = append(s.Problems, Problem{Code: ProblemCertExpired,
				What:   fmt.Sprintf("machine certificate expired on %s: the process server refuses this machine", c.NotAfter.UTC().Format(time.DateOnly)),
				Remedy: "have the operator run 'lifeboat machines reregister " + a.cfg.Machine + "' on the server, then move STATE/identity away and start the agent with --passphrase-file to register again (no resync)"})
		case c.DaysLeft < CertWarnDays:
			s.Problems = append(s.Problems, Problem{Code: ProblemCertExpiring,
				What:   fmt.Sprintf("machine certificate expires in %d days (%s)", c.DaysLeft, c.NotAfter.UTC().Format(time.DateOnly)),
				Remedy: "renew it before then: have the operator run 'lifeboat machines reregister " + a.cfg.Machine + "' on the server, then move STATE/identity away and start the agent with --passphrase-file to register again (no resync)"})
		}
	}
	s.Healthy = len(s.Problems) == 0
	return s
}

// trackerStatus is the local API's view of the tracker's counters.
func trackerStatus(ts tracker.Stats, pinDir string) TrackerStatus {
	s := TrackerStatus{Generation: ts.Generation, InFlight: ts.InFlight, PinDir: pinDir, MissedRuns: ts.MissedRuns}
	if ts.Programs != nil {
		s.Programs = make([]api.TrackerProgram, 0, len(ts.Programs))
	}
	for _, p := range ts.Programs {
		s.Programs = append(s.Programs, api.TrackerProgram{Name: p.Name, ID: p.ID, LinkID: p.LinkID})
	}
	return s
}

// trackerDiskStats is the local API's view of a disk's tracker counters.
func trackerDiskStats(t tracker.DiskStats) api.TrackerDiskStats {
	return api.TrackerDiskStats{Disk: t.Disk, Events: t.Events, Bytes: t.Bytes, Drops: t.Drops,
		BitmapRegions: t.BitmapRegions, Lost: t.Lost, Mode: t.Mode, Misses: t.Misses}
}

// mergeServer folds one disk's upload state into the machine's: connected
// only if every disk is, the oldest error, the latest success.
func mergeServer(s *ServerStatus, u uploader.Status, first bool) {
	s.Connected = u.Connected && (first || s.Connected)
	if u.LastError != "" && (s.LastError == "" || u.ErrorSince.Before(s.ErrorSince)) {
		s.LastError, s.ErrorSince = u.LastError, u.ErrorSince
	}
	if u.LastOK.After(s.LastOK) {
		s.LastOK = u.LastOK
	}
}
