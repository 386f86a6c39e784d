//go:build !linux && !windows

package main

import (
	"fmt"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/api"
)

func checkDevice(path string) error { return unsupported("track") }

func openTracker(trackerOptions) (trackedDisks, error) { return nil, unsupported("track") }

// unsupported refuses the commands that need a tracker: this system has
// none yet.
func unsupported(cmd string) error {
	return api.WithHint(fmt.Errorf("%s: the change tracker: %w", cmd, agent.ErrNotSupported),
		"lifeboat-agent protects disks on Linux only for now (the Windows tracker is issue 14)")
}
