package main

import (
	"fmt"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/api"
)

// On Windows the agent runs with the user-space tracker of package
// windows (docs/windows.md); `track`, which prints the Linux tracker's
// live extents, has no Windows counterpart yet.

func checkDevice(string) error { return unsupported("track") }

func openTracker(trackerOptions) (trackedDisks, error) { return nil, unsupported("track") }

func unsupported(cmd string) error {
	if cmd == "run" {
		return nil
	}
	return api.WithHint(fmt.Errorf("%s: %w on Windows", cmd, agent.ErrNotSupported),
		"on Windows, changes are found at each cut (VSS and the USN journal), not live: use 'lifeboat-agent run' and 'agentctl status'")
}
