package statefile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// File is the name of the state file in the data directory.
const File = "server.json"

// State is the content of DataDir/server.json, written once the listeners
// are bound and removed at shutdown.
type State struct {
	// PID of the server process.
	PID int `json:"pid"`
	// Roles run.
	Roles []string `json:"roles"`
	// API is the bound address of the configuration role ("" if not run).
	API string `json:"api"`
	// APIURL is the URL the lifeboat CLI uses on this host.
	APIURL string `json:"api_url"`
	// Process is the bound address of the process role ("" if not run).
	Process string `json:"process"`
	// Metrics is the bound address of /metrics ("" if not served).
	Metrics string `json:"metrics,omitempty"`
	// Started is when the server started.
	Started time.Time `json:"started"`
	// StoreReflink says whether the local target storage's file system
	// shares extents (reflink); absent when the target storage is not a
	// local directory. See StoreNote.
	StoreReflink *bool `json:"store_reflink,omitempty"`
	// StoreNote is a warning about the target storage with its remedy.
	StoreNote string `json:"store_note,omitempty"`
}

// NoReflinkNote is the warning about local target storage on a file
// system that cannot share extents.
const NoReflinkNote = "the target storage's file system cannot share extents (no reflink): every failover image starts with a full copy of the replica's base data, so failover time follows the disk's data, not the changes; put the data directory (its store/) on XFS made with reflink=1 (the mkfs.xfs default) or on btrfs"

// Read reads DataDir/server.json; a missing file matches os.ErrNotExist.
func Read(dataDir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dataDir, File))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", File, err)
	}
	return st, nil
}

// Write writes DataDir/server.json crash-safely.
func Write(dataDir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dataDir, File), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", File, err)
	}
	return nil
}
