//go:build linux

package tracker

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// TrackedAnywhere reports whether any Lifeboat tracker loaded in the
// kernel — of this process or another, pinned or not — protects the whole
// disk of the block device at path (or a partition of it). It looks at
// every BPF map named "protected_disks".
func TrackedAnywhere(path string) (bool, error) {
	info, err := inspectDevice(path)
	if err != nil {
		return false, err
	}
	var id ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("list bpf maps: %w", err)
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		found := false
		if mi, err := m.Info(); err == nil && mi.Name == lbbpf.TrackerMapProtectedDisks && mi.KeySize == 4 {
			var cfg lbbpf.TrackerLbDiskCfg
			found = m.Lookup(info.dev, &cfg) == nil
		}
		m.Close()
		if found {
			return true, nil
		}
	}
}
