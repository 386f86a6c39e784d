package main

import (
	"context"
	"io"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// program is agentctl's command line (internal/cmdline): its command tree
// for help, suggestions, shell completion and man pages; run runs them.
func program() *cmdline.Program {
	return &cmdline.Program{
		Name:    "agentctl",
		Args:    "COMMAND",
		Short:   "diagnose and control the local Lifeboat agent",
		Long:    "agentctl asks the local lifeboat-agent, through the unix socket in its state directory, for its status and for bookmarks (recovery points on request), and measures the churn of disks before they are protected. Exit status of status: 0 healthy, 1 unhealthy, 3 no agent running, 4 the agent answered an error; 2 for every usage error.",
		Usage:   usage,
		Section: "8",
		Commands: []cmdline.Command{
			{Path: "status", Args: "[--state DIR] [--json] [--watch [--interval 2s]]", Short: "the agent's health, disks, RPO lag and problems with their remedies"},
			{Path: "bookmark", Args: "[--state DIR] [--app-consistent|--group] [--wait]", Short: "cut a recovery point now and print its id"},
			{Path: "bandwidth", Args: "[set RATE [--for DURATION] | reset] [--state DIR] [--json]", Short: "show or change the running agent's upload limit"},
			{Path: "assess", Args: "[--disk DEV...] [--duration 1m] [--state DIR | --server ADDR | --link-mbps N] [--json]", Short: "measure the churn of disks and whether the link keeps up"},
		},
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			code, err := run(ctx, args, stdout, stderr)
			if code == 0 || cmdline.IsHelp(err) || cmdline.IsUsage(err) {
				return err
			}
			return &exitStatus{code: code, err: err}
		},
	}
}

// exitStatus carries an exit status other than 0 and 2 through the command
// tree; err may be nil (the status was printed, e.g. unhealthy).
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err == nil {
		return "exit status"
	}
	return e.err.Error()
}

func (e *exitStatus) Unwrap() error { return e.err }
