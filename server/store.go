package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Opening target storage is the composition's: every role of this server
// shares the one store.

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

// SegmentSum gives the digest of an applied segment from the wrapped
// store, when it keeps them (process.SegmentSummer).
func (l lockedStore) SegmentSum(ctx context.Context, machine, disk string, seq uint64) ([32]byte, error) {
	if ss, ok := l.Store.(process.SegmentSummer); ok {
		return ss.SegmentSum(ctx, machine, disk, seq)
	}
	return [32]byte{}, fmt.Errorf("segment sum: %w", store.ErrNotFound)
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
	s.unlockData = lock
	return nil
}
