//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/tracker"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// SocketName is the local API's unix socket in the state directory.
const SocketName = "agent.sock"

// Status is what `agentctl status --json` prints. Stable: documented in
// docs/agent.md.
type Status struct {
	Machine   string       `json:"machine"`
	Healthy   bool         `json:"healthy"`
	Problems  []Problem    `json:"problems"`
	Disks     []DiskStatus `json:"disks"`
	LastPoint *Point       `json:"last_point,omitempty"`
	LastApp   *Point       `json:"last_app_point,omitempty"`
	// Freeze summarizes the freeze times of the app points (seconds).
	Freeze  Lag `json:"freeze"`
	Tracker struct {
		Generation uint64 `json:"generation"`
		InFlight   uint64 `json:"in_flight"`
		PinDir     string `json:"pin_dir"`
	} `json:"tracker"`
	Uptime string `json:"uptime"`
	// Group is the machine's replication group and its last group
	// point; null when group points are off.
	Group *GroupStatus `json:"group"`
}

// Problem is an unhealthy state with what to do about it.
type Problem struct {
	What   string `json:"what"`
	Remedy string `json:"remedy"`
}

// DiskStatus is the state of one protected disk.
type DiskStatus struct {
	Name         string            `json:"name"`
	Path         string            `json:"path"`
	Size         int64             `json:"size"`
	State        DiskState         `json:"state"`
	Progress     float64           `json:"progress"` // of initial sync or resync, 0..1
	PendingBytes int64             `json:"pending_bytes"`
	SentBytes    int64             `json:"sent_bytes"`
	EqualBytes   int64             `json:"equal_bytes"`
	Spool        uploader.Status   `json:"spool"`
	Lag          Lag               `json:"lag"`
	Tracker      tracker.DiskStats `json:"tracker"`
}

// Status returns the agent's state.
func (a *Agent) Status() Status {
	s := Status{Machine: a.cfg.Machine, Uptime: time.Since(a.started).Round(time.Second).String()}
	ts, terr := a.tr.Stats()
	s.Tracker.Generation, s.Tracker.InFlight, s.Tracker.PinDir = ts.Generation, ts.InFlight, a.cfg.PinDir
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
		s.Problems = append(s.Problems, Problem{What: "last app-consistent point failed: " + a.appErr,
			Remedy: "check the scripts' output in the agent's log and that the filesystems can be frozen (fsfreeze); it is retried at the next interval"})
	}
	if a.pointErr != "" {
		s.Problems = append(s.Problems, Problem{What: "last point failed: " + a.pointErr,
			Remedy: "points are retried every interval; if writes never pause, take an app-consistent point (it freezes the filesystem briefly)"})
	}
	if a.cutErr != "" {
		s.Problems = append(s.Problems, Problem{What: "replication round failed: " + a.cutErr, Remedy: "see the agent's log; it retries every second"})
	}
	s.Group = a.groupStatus()
	if p := a.groupProblem(); p != nil {
		s.Problems = append(s.Problems, *p)
	}
	if a.spoolFull {
		s.Problems = append(s.Problems, Problem{What: "spool full: only the dirty set is kept until the process server catches up",
			Remedy: "check the connection to the process server and its cache space; nothing is lost, the backlog is sent when there is room"})
	}
	for _, d := range a.disks {
		ds := DiskStatus{Name: d.name, Path: d.path, Size: d.size, State: d.state,
			PendingBytes: a.rounds.Pending(d.name) + a.rounds.Unfolded(d.name), SentBytes: d.sent, EqualBytes: d.same, Spool: d.up.Status()}
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
		}
		for _, t := range ts.Disks {
			if t.Disk == d.path {
				ds.Tracker = t
			}
		}
		if strings.Contains(ds.Spool.LastError, uploader.ErrRetired.Error()) {
			s.Problems = append(s.Problems, Problem{What: d.name + ": " + ds.Spool.LastError,
				Remedy: "this machine was failed over and committed: replication has stopped; to protect it again, move its --state away and register it again"})
		} else if ds.Spool.LastError != "" && !ds.Spool.Connected {
			s.Problems = append(s.Problems, Problem{What: d.name + ": process server unreachable: " + ds.Spool.LastError,
				Remedy: "check the network and that lifeboat-server runs; the agent retries and keeps the journal in its spool"})
		} else if ds.Spool.LastError != "" {
			s.Problems = append(s.Problems, Problem{What: d.name + ": process server refused a segment: " + ds.Spool.LastError,
				Remedy: "see the server's log; if it persists, reinstall the agent's state (the disk is then resynced)"})
		}
		if ds.Tracker.Lost > 0 {
			s.Problems = append(s.Problems, Problem{What: d.name + ": the tracker could not record some changes",
				Remedy: "the disk is resynced automatically; raise the bitmap size if the disk grew"})
		}
		s.Disks = append(s.Disks, ds)
	}
	a.mu.Unlock()
	if terr != nil {
		s.Problems = append(s.Problems, Problem{What: "tracker: " + terr.Error(), Remedy: "restart the agent; the disks are then resynced"})
	}
	s.Healthy = len(s.Problems) == 0
	return s
}

// serveAPI serves the local API on the state directory's socket.
func (a *Agent) serveAPI(ctx context.Context) (*http.Server, error) {
	path := filepath.Join(a.cfg.StateDir, SocketName)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("POST /v1/bookmark", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		var p Point
		var err error
		if r.URL.Query().Get("group") == "1" {
			p, err = a.GroupBookmark(ctx)
		} else {
			p, err = a.Bookmark(ctx, r.URL.Query().Get("app") == "1")
		}
		if err != nil {
			hint := "see agentctl status"
			if errors.Is(err, context.DeadlineExceeded) && !a.allProtected() {
				err = errors.New("no point yet: a disk is still in initial sync or resync")
				hint = "agentctl status shows the progress; ask again once every disk is protected"
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error(), "hint": hint})
			return
		}
		if r.URL.Query().Get("wait") == "1" {
			if err := a.WaitListed(ctx, p.ID); err != nil {
				writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": err.Error(), "id": p.ID,
					"hint": "the point is in the journal but the server has not listed it; see agentctl status"})
				return
			}
		}
		writeJSON(w, http.StatusOK, p)
	})
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("local API stopped", "err", err)
		}
	}()
	return srv, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
