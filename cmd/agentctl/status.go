package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cli"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// Exit codes of agentctl status (docs/agent.md).
const (
	exitHealthy    = 0
	exitUnhealthy  = 1
	exitUsage      = 2
	exitNoAgent    = 3 // no agent answers on the socket
	exitAskFailed  = 4 // the agent answered with an error
	problemNoAgent = "agent-not-running"
)

// errNoAgent: nothing listens on the agent's socket.
type errNoAgent struct {
	sock, state string
	err         error
}

func (e *errNoAgent) Error() string {
	return fmt.Sprintf("no agent answers on %s: %v", e.sock, e.err)
}

func (e *errNoAgent) Unwrap() error { return e.err }

// Hint says what to do about it.
func (e *errNoAgent) Hint() string {
	return fmt.Sprintf("start it (lifeboat-agent start, or lifeboat-agent run ... --state %s); if it runs, give agentctl the same --state", e.state)
}

// noAgentStatus is what --json prints when no agent answers, so that
// scripts read one format.
func noAgentStatus(e *errNoAgent, now time.Time) api.AgentStatus {
	return api.AgentStatus{Time: now, Problems: []api.AgentProblem{{Code: problemNoAgent, What: e.Error(), Remedy: e.Hint()}}}
}

// output is where and how status is printed.
type output struct {
	w    io.Writer
	view view
}

func newOutput(w io.Writer) output {
	o := output{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.view.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			o.view.width = cols
		}
	}
	return o
}

func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.SetUsage(fs, "agentctl status [--state DIR | --config FILE] [--json] [--watch [--interval 2s]]")
	stateOf := stateFlag(fs, "the agent's state directory")
	asJSON := fs.Bool("json", false, "print JSON (documented in docs/agent.md)")
	watch := fs.Bool("watch", false, "keep watching: redraw on a terminal, a line per change otherwise; stop with Ctrl-C")
	interval := fs.Duration("interval", 2*time.Second, "how often --watch asks the agent")
	if err := cmdline.Parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, cmdline.Usagef("status", "status: unexpected argument %q", fs.Arg(0))
	}
	if *interval < 100*time.Millisecond {
		return exitUsage, fmt.Errorf("status: --interval %s: must be at least 100ms", *interval)
	}
	state, err := stateOf()
	if err != nil {
		return exitUsage, err
	}
	out := newOutput(stdout)
	get := func(ctx context.Context) (api.AgentStatus, error) {
		return ask(state, func(l *client.Local) (api.AgentStatus, error) { return l.Status(ctx) })
	}
	if *watch {
		return watchStatus(ctx, get, out, *asJSON, *interval, stderr)
	}
	st, err := get(ctx)
	return printOnce(out, st, err, *asJSON, stderr)
}

// printOnce prints one status (or why there is none) and returns the exit
// code.
func printOnce(out output, st api.AgentStatus, err error, asJSON bool, stderr io.Writer) (int, error) {
	var na *errNoAgent
	if errors.As(err, &na) {
		if asJSON {
			writeJSON(out.w, noAgentStatus(na, time.Now()))
		}
		fmt.Fprintf(stderr, "agentctl: %v\n  remedy: %s\n", na, na.Hint())
		return exitNoAgent, nil
	}
	if err != nil {
		return exitAskFailed, err
	}
	if asJSON {
		writeJSON(out.w, st)
	} else {
		renderStatus(out.w, st, out.view)
	}
	return exitCode(st), nil
}

func exitCode(st api.AgentStatus) int {
	if !st.Healthy {
		return exitUnhealthy
	}
	return exitHealthy
}

// writeJSON writes v as every --json output is written: indented, and
// with [] for an empty list, never null.
func writeJSON(w io.Writer, v any) { _ = cli.WriteJSON(w, v) }
