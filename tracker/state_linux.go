//go:build linux

package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

type stateFile struct {
	BootID string   `json:"boot_id"`
	Disks  []string `json:"disks"`
}

// Gap reports a tracking gap of a protected device.
func (t *Linux) Gap(path string) error {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	g := t.gaps[abs]
	p := t.byPath[abs]
	base := t.gapBase[abs]
	t.mu.Unlock()
	if g != nil {
		return g
	}
	if p == nil {
		return nil
	}
	st, err := t.diskStats(p.dev)
	if err != nil {
		return err
	}
	if st.Lost > base[0] {
		return &ResyncRequiredError{Disk: abs, Reason: fmt.Sprintf("%d changes could not be recorded", st.Lost-base[0])}
	}
	since := max(base[1], t.missBase)
	if missed := t.missedRuns(); missed > since {
		return &ResyncRequiredError{Disk: abs, Reason: fmt.Sprintf("the kernel skipped %d tracker runs", missed-since)}
	}
	return nil
}

// AckGap records that the gap Gap reported for a device is being repaired
// (its resync has started): from now on Gap reports only new gaps.
// Without it a disk would be resynced again after every resync.
func (t *Linux) AckGap(path string) {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.gaps, abs)
	p := t.byPath[abs]
	if p == nil {
		return
	}
	var base [2]uint64
	if st, err := t.diskStats(p.dev); err == nil {
		base[0] = st.Lost
	}
	base[1] = t.missedRuns()
	t.gapBase[abs] = base
}

func (t *Linux) recordStateLocked() error {
	if t.opts.StateFile == "" {
		return nil
	}
	sf := stateFile{BootID: formatBootID(t.bootID)}
	for p := range t.byPath {
		sf.Disks = append(sf.Disks, p)
	}
	sort.Strings(sf.Disks)
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.opts.StateFile), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(t.opts.StateFile, b, 0o600)
}

func readStateFile(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tracker state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("read tracker state %s: %w (remove it; the disks will be resynced)", path, err)
	}
	return &sf, nil
}

func readBootID() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, fmt.Errorf("read boot id: %w", err)
	}
	hex := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(hex) != 32 {
		return id, fmt.Errorf("read boot id: unexpected %q", b)
	}
	for i := 0; i < 16; i++ {
		var v byte
		if _, err := fmt.Sscanf(hex[2*i:2*i+2], "%02x", &v); err != nil {
			return id, fmt.Errorf("read boot id: %w", err)
		}
		id[i] = v
	}
	return id, nil
}

// BootID returns the kernel's boot id as /proc/sys/kernel/random/boot_id
// spells it: the id a change of which means a reboot, hence a tracking gap.
func BootID() (string, error) {
	id, err := readBootID()
	if err != nil {
		return "", err
	}
	return formatBootID(id), nil
}

func formatBootID(id [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}
