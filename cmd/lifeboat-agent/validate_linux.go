package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// checkNotTrackedElsewhere refuses a disk that a tracker other than this
// agent's own (pinned in pinDir, which a restart adopts) already tracks:
// two trackers on one disk would each see every write, and each agent
// would replicate it to its own server.
func checkNotTrackedElsewhere(disk, pinDir string) error {
	tracked, err := tracker.TrackedAnywhere(disk)
	if err != nil || !tracked {
		return nil // cannot tell (no BPF here): tracker.Open decides later
	}
	if _, err := os.Stat(pinDir); err == nil {
		return nil // ours, pinned by the previous run: adopted
	}
	var others []string
	if m, _ := filepath.Glob("/sys/fs/bpf/lifeboat-*"); len(m) > 0 {
		for _, d := range m {
			if d != pinDir {
				others = append(others, d)
			}
		}
	}
	who := "another Lifeboat tracker"
	if len(others) > 0 {
		who += " (pinned in " + strings.Join(others, ", ") + ")"
	}
	return api.WithHint(fmt.Errorf("disk %s is already tracked by %s", disk, who),
		"another agent protects this disk: stop it ('lifeboat-agent release-tracker --config ITS-FILE' or 'lifeboat-agent uninstall'), or give this agent its --pin-dir if that tracker is this machine's own")
}
