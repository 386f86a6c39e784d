// Command agentctl diagnoses the local mobility agent and acts on it:
// `status` and `bookmark` talk to the agent's unix socket in its state
// directory; `assess` measures the churn of disks before they are
// protected, with a short-lived tracker of its own (lifeboat-agent track,
// run as a child process: agentctl links no tracker). The local API is
// asked through client.Local. One file per subcommand; render.go draws the
// status for humans.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
	"github.com/lifeboat-dr/lifeboat/internal/cli"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// DefaultState is the agent's state directory when --state is not given.
var DefaultState = "/var/lib/lifeboat/agent"

const usage = `agentctl: diagnose the local Lifeboat agent

Usage:
  agentctl status   [--state DIR] [--json] [--watch [--interval 2s]]
                    exit code 0 healthy, 1 unhealthy, 3 no agent running, 4 the agent answered an error
  agentctl bookmark [--state DIR] [--app-consistent] [--wait]    prints the point id
  agentctl bookmark [--state DIR] --group [--wait]                a group point (on the group's coordinator)
  agentctl bandwidth [set RATE [--for D] | reset] [--state DIR] [--json]
                    the upload limit in force; set changes it until reset, D or the agent's restart
  agentctl assess   [--disk DEV...] [--duration 1m] [--state DIR | --server ADDR | --link-mbps N] [--json]
                    measures the churn of disks before protecting them and whether the link keeps up
  agentctl completion bash|zsh|fish    print a shell completion script
  agentctl --version

Exit status 2: a usage error (unknown command or flag, bad value, extra argument).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		cli.PrintError(os.Stderr, "agentctl", err)
	}
	os.Exit(code)
}

// execute runs the command line args through the program's command tree
// (commands.go) and returns the exit status: 2 for every usage error.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	err := program().Execute(ctx, args, stdout, stderr)
	var c *exitStatus
	switch {
	case err == nil:
		return 0, nil
	case cmdline.IsUsage(err):
		return exitUsage, err
	case errors.As(err, &c):
		return c.code, c.err
	}
	return 1, err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2, cmdline.Usagef("", "no command given")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateOf := stateFlag(fs, "the agent's state directory")
	switch args[0] {
	case "status":
		return statusCommand(ctx, args[1:], stdout, stderr)
	case "assess":
		return assessCommand(ctx, args[1:], stdout, stderr)
	case "bandwidth":
		return bandwidthCommand(ctx, args[1:], stdout, stderr)
	case "bookmark":
		app := fs.Bool("app-consistent", false, "freeze the filesystems for the cut (app-consistent point)")
		wait := fs.Bool("wait", false, "return once the point is durable on the server and listed")
		cmdline.SetUsage(fs, "agentctl bookmark [--state DIR | --config FILE] [--app-consistent | --group] [--wait]")
		group := fs.Bool("group", false, "a group point across the machine's replication group (only on the group's coordinator); --wait waits for this machine's part")
		if err := cmdline.Parse(fs, args[1:]); err != nil {
			return 2, err
		}
		state, err := stateOf()
		if err != nil {
			return 2, err
		}
		p, err := ask(state, func(l *client.Local) (api.AgentPoint, error) {
			return l.Bookmark(ctx, client.BookmarkOptions{App: *app, Group: *group, Wait: *wait})
		})
		if err != nil {
			var na *errNoAgent
			if errors.As(err, &na) {
				return exitNoAgent, na
			}
			return 1, err
		}
		fmt.Fprintln(stdout, p.ID)
		return 0, nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0, nil
	case "--version", "-version", "version":
		buildinfo.Print(stdout, "agentctl")
		return 0, nil
	}
	return 2, cmdline.Usagef("", "unknown command %q", args[0])
}

// ask runs one request of the local API on the agent of state; nothing
// listening there is an *errNoAgent.
func ask[T any](state string, f func(*client.Local) (T, error)) (T, error) {
	v, err := f(client.NewLocal(state))
	var na *client.NoAgentError
	if errors.As(err, &na) {
		return v, &errNoAgent{sock: na.Socket, state: state, err: na.Err}
	}
	return v, err
}
