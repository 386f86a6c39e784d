package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Files of a joined process server's data directory.
const (
	// JoinFile says which configuration server this process server
	// joined, under which id.
	JoinFile = "join.json"
	// AssignmentsFile keeps the last heartbeat answer, so that a
	// restarted process server serves its machines before it reaches
	// the configuration server again.
	AssignmentsFile = "assignments.json"
)

// JoinInfo is the content of DataDir/join.json.
type JoinInfo struct {
	// ConfigServer is the configuration server's URL or host:port.
	ConfigServer string `json:"config_server"`
	// ID is this process server's id.
	ID string `json:"id"`
	// ConfigID is the configuration server's id: only its certificate
	// may drain this server.
	ConfigID string    `json:"config_id"`
	Joined   time.Time `json:"joined"`
}

// scaleoutState is the Server's state of scale-out (servers.go for the
// configuration role, this file for a joined process server).
type scaleoutState struct {
	moveMu sync.Mutex // one move at a time (configuration role)

	mu sync.Mutex
	// Configuration role.
	servers map[string]*serverRecord
	beats   map[string]serverBeat
	moving  map[string]bool // machines of the local process role being drained
	hc      *http.Client    // towards joined servers
	// Joined process server.
	join     *JoinInfo
	cfgc     *client.Server
	assigned map[string]api.Assignment // the last heartbeat answer
	synced   bool                      // assigned is from a heartbeat or AssignmentsFile
	released map[string]uint64         // machine -> epoch of its drain
	lastOK   time.Time
	lastErr  string
	// unlockData releases DataDir/server.lock (shared store only).
	unlockData func()
}

func (so *scaleoutState) init() {
	so.servers = map[string]*serverRecord{}
	so.beats = map[string]serverBeat{}
	so.moving = map[string]bool{}
	so.assigned = map[string]api.Assignment{}
	so.released = map[string]uint64{}
}

// ReadJoin reads DataDir/join.json; ok is false when the directory is not
// a joined process server's.
func ReadJoin(dir string) (ji JoinInfo, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, JoinFile))
	if errors.Is(err, os.ErrNotExist) {
		return ji, false, nil
	}
	if err != nil {
		return ji, false, fmt.Errorf("read %s: %w", JoinFile, err)
	}
	if err := json.Unmarshal(b, &ji); err != nil {
		return ji, false, fmt.Errorf("read %s: %w", JoinFile, err)
	}
	return ji, true, nil
}

// JoinOptions configure Join.
type JoinOptions struct {
	// DataDir is the new data directory of the process server.
	DataDir string
	// ConfigServer is the configuration server's URL or host:port.
	ConfigServer string
	// ID names the process server; Passphrase is the registration
	// passphrase of the configuration server.
	ID, Passphrase string
	// SANs are the names agents reach the process server by (the host
	// of its --advertise address).
	SANs []string
}

// Join makes the data directory of a process server that joins a
// configuration server: it gets a certificate from the configuration
// server's CA (client.Join) and writes ca.crt, server.crt, server.key and
// join.json. It refuses a directory that holds a CA or a join already.
func Join(ctx context.Context, o JoinOptions) error {
	for _, f := range []string{pki.CACertFile, JoinFile} {
		if _, err := os.Lstat(filepath.Join(o.DataDir, f)); err == nil {
			return &httpapi.Error{Msg: fmt.Sprintf("%s already holds %s", o.DataDir, f), Remedy: "give the joining server a data directory of its own"}
		}
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	sans := slices.Clone(o.SANs)
	sans = append(sans, "localhost", "127.0.0.1", "::1")
	if h, err := os.Hostname(); err == nil && h != "" {
		sans = append(sans, h)
	}
	ans, err := client.Join(ctx, o.ConfigServer, o.ID, o.Passphrase, sans, key)
	if err != nil {
		return err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	ji, _ := json.MarshalIndent(JoinInfo{ConfigServer: o.ConfigServer, ID: o.ID, ConfigID: ans.ConfigID, Joined: time.Now().UTC()}, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{pki.ServerKeyFile, keyPEM, 0o600},
		{pki.ServerCertFile, []byte(ans.Certificate), 0o644},
		{pki.CACertFile, []byte(ans.CA), 0o644},
		{JoinFile, append(ji, '\n'), 0o644},
	} {
		if err := fsutil.WriteFileAtomic(filepath.Join(o.DataDir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("join: %w", err)
		}
	}
	return nil
}

func (s *Server) joined() bool { return s.so.join != nil }

// openJoined prepares a joined process server: its client of the
// configuration server and its last known assignment.
func (s *Server) openJoined(ji JoinInfo) error {
	if s.cfg.Roles.Config {
		return &httpapi.Error{Msg: "this data directory joined configuration server " + ji.ConfigServer, Remedy: "run it with --roles process (a joined server has no CA key)"}
	}
	if s.cfg.ConfigServer != "" {
		ji.ConfigServer = s.cfg.ConfigServer
	}
	s.so.join = &ji
	s.cfg.Name = ji.ID
	c, err := client.NewServer(ji.ConfigServer, s.cert, s.ca.CertPEM)
	if err != nil {
		return err
	}
	s.so.cfgc = c
	b, err := os.ReadFile(filepath.Join(s.dir, AssignmentsFile))
	if err == nil {
		var as []api.Assignment
		if json.Unmarshal(b, &as) == nil {
			s.applyAssignments(as, false)
		}
	}
	return nil
}

// heartbeatLoop reports to the configuration server every interval and
// applies the assignment it answers, until ctx is done.
func (s *Server) heartbeatLoop(ctx context.Context) {
	log := s.cfg.Logger.With(httpapi.LogComponent, "scaleout")
	interval := api.DefaultHeartbeatSeconds * time.Second
	for {
		if err := s.heartbeat(ctx); err != nil && ctx.Err() == nil {
			s.so.mu.Lock()
			first := s.so.lastErr == ""
			s.so.lastErr = err.Error()
			s.so.mu.Unlock()
			if first {
				log.Warn("cannot reach the configuration server; serving the last known assignment", httpapi.LogErr, err,
					"hint", "check that the configuration server at "+s.so.join.ConfigServer+" runs and that this server's certificate is still its latest join")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (s *Server) heartbeat(ctx context.Context) error {
	hb := api.Heartbeat{Address: s.localProcessAddr(""), Roles: s.cfg.Roles.List(), Machines: []api.ServedMachine{}}
	s.so.mu.Lock()
	names := make([]string, 0, len(s.so.assigned))
	for m := range s.so.assigned {
		names = append(names, m)
	}
	s.so.mu.Unlock()
	slices.Sort(names)
	for _, m := range names {
		if !s.servesHere(m) {
			continue
		}
		sm := api.ServedMachine{Machine: m, Disks: []api.DiskState{}, Problems: []string{}}
		rec, _ := s.machines.Get(m)
		if !rec.LastSeen.IsZero() {
			t := rec.LastSeen
			sm.LastSeen = &t
		}
		if disks, err := s.machineDisks(ctx, m); err == nil {
			for _, d := range disks {
				if st, err := s.diskStatus(ctx, m, d); err == nil {
					sm.Disks = append(sm.Disks, st)
				}
			}
			for _, dp := range s.proc.DiskProblems(m) {
				sm.Problems = append(sm.Problems, process.ProblemText(dp, " on process server "+s.localID()))
			}
		}
		hb.Machines = append(hb.Machines, sm)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ans, err := s.so.cfgc.Heartbeat(hctx, hb)
	if err != nil {
		return err
	}
	s.so.mu.Lock()
	s.so.lastOK, s.so.lastErr = time.Now(), ""
	s.so.mu.Unlock()
	s.applyAssignments(ans.Machines, true)
	return nil
}

// applyAssignments makes as the machines this joined server serves, and
// their records what the configuration server says of them.
func (s *Server) applyAssignments(as []api.Assignment, save bool) {
	next := map[string]api.Assignment{}
	for _, a := range as {
		if api.ValidName(a.Machine) == nil {
			next[a.Machine] = a
		}
	}
	s.so.mu.Lock()
	prev := s.so.assigned
	s.so.assigned, s.so.synced = next, true
	for m, e := range s.so.released {
		if a, ok := next[m]; ok && a.Epoch > e {
			delete(s.so.released, m) // assigned to us again since
		}
	}
	s.so.mu.Unlock()
	for m, a := range next {
		if p, ok := prev[m]; !ok || p.Epoch != a.Epoch {
			// Newly assigned: anything known of it from before is
			// stale; load it afresh from target storage.
			s.releaseMachine(m)
		}
	}
	for m := range prev {
		if _, ok := next[m]; !ok {
			// Moved away (drained before) or forced away: what we
			// know of it is stale from now on.
			s.releaseMachine(m)
		}
	}
	for _, a := range next {
		pol := store.Retention{Window: time.Duration(a.Policy.WindowSeconds) * time.Second,
			KeepAll: time.Duration(a.Policy.KeepAllSeconds) * time.Second, Thin: time.Duration(a.Policy.ThinSeconds) * time.Second}
		state := a.State
		if state == api.StateProtected {
			state = ""
		}
		if _, onFile := s.machines.Get(a.Machine); !save && onFile {
			// At start the record on file wins over the saved
			// answer, as it always has; the next heartbeat applies
			// the answer to it.
			continue
		}
		s.machines.Touch(a.Machine, func(rec *machines.Record) {
			rec.State, rec.Serial, rec.SerialOnly, rec.Epoch = state, a.Serial, a.SerialOnly, a.Epoch
			if a.Policy.Default {
				rec.Policy = nil
			} else {
				rec.Policy = &pol
			}
		})
	}
	if save {
		b, _ := json.MarshalIndent(as, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, AssignmentsFile), append(b, '\n'), 0o600); err != nil {
			s.cfg.Logger.With(httpapi.LogComponent, "scaleout").Warn("save assignments", httpapi.LogErr, err)
		}
	}
}

// checkJoinedAssigned refuses a machine a joined server must not serve.
func (s *Server) checkJoinedAssigned(machine string) error {
	s.so.mu.Lock()
	defer s.so.mu.Unlock()
	if !s.so.synced {
		return httpapi.Errorf(http.StatusServiceUnavailable, "process server "+s.localID()+" has not heard from the configuration server yet",
			"check that the configuration server at "+s.so.join.ConfigServer+" runs; the agent retries")
	}
	a, ok := s.so.assigned[machine]
	if e, drained := s.so.released[machine]; ok && drained && a.Epoch <= e {
		return movingError("machine " + machine + " is being moved away from process server " + s.localID())
	}
	if !ok {
		return httpapi.Errorf(http.StatusMisdirectedRequest, fmt.Sprintf("machine %s is not assigned to process server %s", machine, s.localID()),
			"the agent learns its process server from the configuration server within seconds; 'lifeboat machines' shows the assignment")
	}
	return nil
}

// drain handles POST /v1/drain/{m} on a joined server's process role:
// from the configuration server only.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) error {
	if !s.joined() {
		return httpapi.Errorf(http.StatusNotFound, "this process server joined no configuration server", "the configuration server drains its own process role itself")
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCNPrefix+s.so.join.ConfigID {
		return httpapi.Errorf(http.StatusForbidden, "only the configuration server may drain a process server", "move machines with 'lifeboat move'")
	}
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "see docs/protocol.md")
	}
	var req api.DrainRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	s.so.mu.Lock()
	prev, had := s.so.released[m]
	s.so.released[m] = req.Epoch
	s.so.mu.Unlock()
	ds, err := s.drainLocal(r.Context(), m)
	if err != nil {
		s.so.mu.Lock()
		if had {
			s.so.released[m] = prev
		} else {
			delete(s.so.released, m)
		}
		s.so.mu.Unlock()
		return err
	}
	s.cfg.Logger.With(httpapi.LogComponent, "scaleout", httpapi.LogMachine, m).Info("drained for a move", "to", req.To, "epoch", req.Epoch)
	httpapi.WriteJSON(w, http.StatusOK, api.DrainResult{Disks: ds})
	return nil
}

// lockedStore is target storage shared by several processes (the process
// servers and the configuration server of a scale-out deployment): it
// excludes a machine's Prune from its Materialize across processes with
// flock(2) on STORE/scaleout-locks/<machine>.lock. Apply, SetDisks and
// Hashes need no such lock: only the process server a machine is
// assigned to calls them.
type lockedStore struct {
	store.Store
	dir string
}

// LocksDir is the directory of a shared store's cross-process locks.
const LocksDir = "scaleout-locks"

func (l lockedStore) lock(machine string, exclusive bool) (func(), error) {
	if err := os.MkdirAll(filepath.Join(l.dir, LocksDir), 0o700); err != nil {
		return nil, err
	}
	return flockFile(filepath.Join(l.dir, LocksDir, machine+".lock"), exclusive)
}

func (l lockedStore) Prune(ctx context.Context, machine string, r store.Retention, now time.Time) (store.PruneResult, error) {
	unlock, err := l.lock(machine, true)
	if err != nil {
		return store.PruneResult{}, fmt.Errorf("lock machine: %w", err)
	}
	defer unlock()
	return l.Store.Prune(ctx, machine, r, now)
}

func (l lockedStore) Materialize(ctx context.Context, machine, pointID, outDir string) ([]store.Image, error) {
	unlock, err := l.lock(machine, false)
	if err != nil {
		return nil, fmt.Errorf("lock machine: %w", err)
	}
	defer unlock()
	return l.Store.Materialize(ctx, machine, pointID, outDir)
}

// ApplyMapped applies a segment the server has checked in full through the
// wrapped store, from its map where the store takes one.
func (l lockedStore) ApplyMapped(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error {
	if ma, ok := l.Store.(process.MappedApplier); ok {
		return ma.ApplyMapped(ctx, machine, disk, seq, segmentPath, m)
	}
	return l.Store.Apply(ctx, machine, disk, seq, segmentPath)
}

// Close closes the wrapped store.
func (l lockedStore) Close() error {
	if c, ok := l.Store.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// openStore opens target storage: Config.StoreDir (default DataDir/store),
// shared between processes when Config.SharedStore.
func (s *Server) openStore() error {
	dir := s.cfg.StoreDir
	if dir == "" {
		dir = filepath.Join(s.dir, StoreDir)
	}
	if !s.cfg.SharedStore {
		l, err := store.OpenLocal(dir)
		if err != nil {
			return &httpapi.Error{Msg: "open target storage", Remedy: "is another lifeboat-server running on this --data directory? (servers sharing a --store need --shared-store)", Err: err}
		}
		s.store, s.ownStore = l, true
		return nil
	}
	lock, err := tryFlock(filepath.Join(s.dir, "server.lock"))
	if err != nil {
		return &httpapi.Error{Msg: "lock data directory", Remedy: "is another lifeboat-server running on this --data directory?", Err: err}
	}
	l, err := store.OpenLocalShared(dir)
	if err != nil {
		lock()
		return &httpapi.Error{Msg: "open shared target storage " + dir, Remedy: "every server on a shared --store needs --shared-store", Err: err}
	}
	s.store, s.ownStore = lockedStore{Store: l, dir: l.Dir()}, true
	s.so.unlockData = lock
	return nil
}
