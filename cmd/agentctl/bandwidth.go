package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/internal/config"
)

const bandwidthUsage = `Usage:
  agentctl bandwidth [--state DIR] [--json]                       the upload limit in force and where it comes from
  agentctl bandwidth set RATE [--for DURATION] [--state DIR] [--json]
                     limit uploads to RATE (20MiB, 20MiB/s, unlimited) until reset, DURATION, or the agent's restart
  agentctl bandwidth reset [--state DIR] [--json]                 back to --bandwidth-limit and --bandwidth-schedule
`

// bandwidthCommand shows or changes the running agent's upload limit
// (api.PathAgentBandwidth).
func bandwidthCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("bandwidth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bandwidthUsage); cmdline.PrintDefaults(fs) }
	stateOf := stateFlag(fs, "the agent's state directory")
	asJSON := fs.Bool("json", false, "print JSON (docs/agent.md)")
	forD := new(time.Duration)
	config.DurationVar(fs, forD, "for", 0, "with set: end the limit after this long (units ms, s, m, h; 0: until reset or the agent's restart)")
	// Flags may come before, between and after the words (set, RATE).
	words, err := cmdline.ParseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, err
		}
		return exitUsage, err
	}
	action := "show"
	if len(words) > 0 {
		action, words = words[0], words[1:]
	}
	var limit int64
	switch action {
	case "show", "reset":
		if len(words) > 0 {
			fmt.Fprint(stderr, bandwidthUsage)
			return exitUsage, cmdline.Usagef("bandwidth", "bandwidth %s: unexpected argument %q", action, words[0])
		}
		if *forD != 0 {
			return exitUsage, cmdline.Usagef("bandwidth", "bandwidth %s: --for goes with set", action)
		}
	case "set":
		if len(words) != 1 {
			fmt.Fprint(stderr, bandwidthUsage)
			return exitUsage, cmdline.Usagef("bandwidth", "bandwidth set: give one RATE, e.g. agentctl bandwidth set 10MiB")
		}
		var err error
		if limit, err = config.ParseRate(words[0]); err != nil {
			return exitUsage, fmt.Errorf("bandwidth set: %w", err)
		}
		if *forD < 0 {
			return exitUsage, fmt.Errorf("bandwidth set: --for %s: must not be negative", *forD)
		}
	default:
		fmt.Fprint(stderr, bandwidthUsage)
		return exitUsage, cmdline.Usagef("bandwidth", "bandwidth: unknown action %q (show, set or reset)", action)
	}
	state, err := stateOf()
	if err != nil {
		return exitUsage, err
	}
	b, err := ask(state, func(l *client.Local) (api.AgentBandwidth, error) {
		switch action {
		case "set":
			return l.SetBandwidth(ctx, limit, *forD)
		case "reset":
			return l.ResetBandwidth(ctx)
		}
		return l.Bandwidth(ctx)
	})
	if err != nil {
		var na *errNoAgent
		if errors.As(err, &na) {
			return exitNoAgent, na
		}
		return exitAskFailed, err
	}
	if *asJSON {
		writeJSON(stdout, b)
		return 0, nil
	}
	fmt.Fprintln(stdout, bandwidthLine(b, time.Now()))
	return 0, nil
}

// bandwidthLine says the limit in force, where it comes from and until
// when, relative to now.
func bandwidthLine(b api.AgentBandwidth, now time.Time) string {
	s := config.FormatRate(b.Limit)
	switch b.Source {
	case api.BandwidthFromSchedule:
		s += " (schedule window " + b.Window + ")"
	case api.BandwidthFromOverride:
		s += " (set with agentctl bandwidth set"
		if b.Override != nil && !b.Override.Until.IsZero() {
			s += ", until " + b.Override.Until.Format("15:04:05") + ", " + ago(now, b.Override.Until)
		} else {
			s += ", until reset or the agent's restart"
		}
		s += ")"
	case api.BandwidthFromLimit:
		s += " (--bandwidth-limit)"
	default:
		s = "unlimited"
	}
	if b.Source != api.BandwidthFromOverride && !b.NextChange.IsZero() {
		s += "; changes at " + b.NextChange.Format("Mon 15:04")
	}
	if b.Source == api.BandwidthFromOverride || len(b.Schedule) > 0 {
		s += fmt.Sprintf("; configured: %s outside the schedule", config.FormatRate(b.Configured))
		if len(b.Schedule) > 0 {
			s += fmt.Sprintf(" %q", b.Schedule)
		}
	}
	return s
}
