package main

import (
	"fmt"
	"io"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/logging"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb"
)

// validate checks every setting of run before anything has a side
// effect: before the state directory is created, the machine registered
// (a certificate issued, its key written) or a tracker attached.
func validate(o *runOptions) error {
	level, err := logging.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if _, err := logging.New(io.Discard, logging.Options{Format: o.logFormat, Level: level}); err != nil {
		return fmt.Errorf("--log-format: %w", err)
	}
	if _, err := bandwidthLimiter(o.bandwidthLimit, o.bandwidthSchedule); err != nil {
		return err
	}
	if err := metricsweb.Check(o.webConfig); err != nil {
		return err
	}
	if err := agent.Validate(agent.Config{Machine: o.name, Disks: o.disks, StateDir: o.state,
		PointInterval: o.pointEvery, SpoolBytes: o.spool, PinDir: o.pinDir}); err != nil {
		return err
	}
	pinDir := o.pinDir
	if pinDir == "" {
		pinDir = "/sys/fs/bpf/lifeboat-" + o.name
	}
	for _, d := range o.disks {
		if err := checkNotTrackedElsewhere(d, pinDir); err != nil {
			return err
		}
	}
	return nil
}
