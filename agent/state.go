package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// DiskState is the replication state of a disk (docs/ARCHITECTURE.md §2).
type DiskState = api.AgentDiskState

const (
	// StateInitialSync: the first full copy, with tracking already on.
	StateInitialSync = api.AgentStateInitialSync
	// StateProtected: delta replication.
	StateProtected = api.AgentStateProtected
	// StateResync: after a loss of tracking, a checksum compare that sends
	// only the blocks that differ from the replica.
	StateResync = api.AgentStateResync
)

// persisted is the agent's state file (STATE/agent.json).
type persisted struct {
	Machine string `json:"machine"`
	// Clean is true only between an orderly stop and the next start.
	Clean bool                      `json:"clean_shutdown"`
	Disks map[string]*diskPersisted `json:"disks"`
}

type diskPersisted struct {
	Path  string    `json:"path"`
	Size  int64     `json:"size"`
	State DiskState `json:"state"`
	// NextSeq is the sequence number of the next segment to write; the
	// server never has more.
	NextSeq uint64 `json:"next_seq"`
	// Backlog is what was still to read at an orderly stop.
	Backlog [][2]int64 `json:"backlog,omitempty"`
	// Total and Done measure an initial sync or resync.
	Total int64 `json:"sync_total,omitempty"`
	Done  int64 `json:"sync_done,omitempty"`
}

func loadState(dir string) (*persisted, error) {
	b, err := os.ReadFile(filepath.Join(dir, "agent.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, api.WithHint(fmt.Errorf("read agent state %s: %w", filepath.Join(dir, "agent.json"), err), "move it away to start anew; the disks will be resynced")
	}
	if p.Disks == nil {
		p.Disks = map[string]*diskPersisted{}
	}
	return &p, nil
}

func saveState(dir string, p *persisted) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, "agent.json"), b, 0o600)
}
