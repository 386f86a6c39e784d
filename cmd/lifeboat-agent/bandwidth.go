package main

import (
	"fmt"
	"strings"

	"github.com/lifeboat-dr/lifeboat/uploader"
)

// scheduleFlag is --bandwidth-schedule: repeatable, one window a value
// (a TOML array, or comma-separated in the environment); each window is
// checked as it is given, the overlaps once all are in (parse).
type scheduleFlag []string

func (s *scheduleFlag) String() string { return strings.Join(*s, ",") }

// IsList tells internal/config that the flag repeats.
func (s *scheduleFlag) IsList() bool { return true }

// Type names the value in pflag's help.
func (s *scheduleFlag) Type() string { return "window" }

// Get returns the windows (flag.Getter).
func (s *scheduleFlag) Get() any { return []string(*s) }

func (s *scheduleFlag) Set(v string) error {
	for _, w := range strings.Split(v, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		if _, err := uploader.ParseWindow(w); err != nil {
			return err
		}
		*s = append(*s, w)
	}
	return nil
}

// bandwidthLimiter returns the limiter of run's bandwidth flags.
func bandwidthLimiter(limit int64, windows []string) (*uploader.Limiter, error) {
	sched, err := uploader.ParseSchedule(windows)
	if err != nil {
		return nil, fmt.Errorf("--bandwidth-schedule: %w", err)
	}
	return uploader.NewLimiter(limit, sched), nil
}
