// Command lifeboat is Lifeboat's admin CLI: it talks to the admin API of a
// configuration server (lifeboat-server) to list machines and recovery
// points, to fail over, commit and run recovery plans, and to set retention.
// See docs/server.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
	"github.com/lifeboat-dr/lifeboat/internal/cli"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

const usage = `lifeboat: Lifeboat's admin CLI

Usage:
  lifeboat [CONNECTION] machines [--json]
  lifeboat [CONNECTION] machines reregister|revoke NAME [--json]
  lifeboat [CONNECTION] machines discard NAME DISK SEQ [--json]
  lifeboat [CONNECTION] servers [--json]
  lifeboat [CONNECTION] move MACHINE --to SERVER [--force] [--json]
  lifeboat [CONNECTION] points MACHINE [--json]
  lifeboat [CONNECTION] points --group NAME [--json]
  lifeboat [CONNECTION] failover MACHINE --point ID|latest|latest-app [--test] --out DIR [--check] [--json]
  lifeboat [CONNECTION] failover MACHINE --point ID|latest|latest-app [--test] --to-blob CONTAINER [--json]
  lifeboat [CONNECTION] failover --group NAME --point ID|latest [--test] --out DIR [--check] [--json]
  lifeboat [CONNECTION] failover MACHINE --point ID|latest --test --boot [--net isolated] [--ready REGEX] [--timeout 10m] [--verify SCRIPT] [--out DIR] [--keep] [--json]
  lifeboat [CONNECTION] vms [--json], vms stop ID
  lifeboat [CONNECTION] drill list, drill show|run MACHINE, drill set MACHINE --interval 24h [--verify SCRIPT] [--ready REGEX] [--timeout 10m]
  lifeboat [CONNECTION] commit MACHINE [--json]
  lifeboat [CONNECTION] failback MACHINE --to DEV|DISK=DEV [--from PATH|DISK=PATH] [--complete] [--json]
  lifeboat [CONNECTION] failback MACHINE [--complete|--cancel] [--json]
  lifeboat [CONNECTION] policy show MACHINE [--json]
  lifeboat [CONNECTION] policy set MACHINE [--window 24h] [--keep-all 2h] [--thin 1h] [--default]
  lifeboat [CONNECTION] prune MACHINE [--json]
  lifeboat [CONNECTION] plan create NAME --group M1,M2 [--group M3...] [--script-after-group N=PATH...]
  lifeboat [CONNECTION] plan show|delete NAME, plan list
  lifeboat [CONNECTION] group create NAME --machines A,B [--interval 5m], group list, group show|delete NAME
  lifeboat [CONNECTION] group point NAME [--wait 2m]
  lifeboat [CONNECTION] plan test|run NAME --out DIR [--point latest|latest-app] [--check] [--json]
  lifeboat [CONNECTION] push-install --host H [--user U] --key SSHKEY [--known-hosts F] [--port 22] [--package FILE] --disk DEV... [--name MACHINE] [--json]
                                  (here --key is the SSH key; the admin key is --admin-key)
  lifeboat [CONNECTION] users list|add NAME --role viewer|operator [--password-file F]|remove NAME
  lifeboat [CONNECTION] audit [--limit N] [--json]
  lifeboat [CONNECTION] bookmark MACHINE [--app-consistent] [--wait 2m] [--json]
  lifeboat [CONNECTION] test-failovers [--machine M] [--json], test-failovers cleanup ID...|--machine M

CONNECTION (before or after the command):
  --data DIR                      on the server host: DIR/server.json, DIR/ca.crt, DIR/admin.*
  --server URL --ca F --cert F --key F   anywhere else
Environment defaults: LIFEBOAT_DATA, LIFEBOAT_SERVER, LIFEBOAT_CA, LIFEBOAT_CERT, LIFEBOAT_KEY.

Run 'lifeboat COMMAND --help' for the flags of a command; 'lifeboat --version' prints the version;
'lifeboat completion bash|zsh|fish' prints a shell completion script. Exit status: 0 done,
1 failed, 2 usage error (unknown command or flag, bad value, missing argument).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		printError(os.Stderr, err)
		if cmdline.IsUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// Main is the program, with its streams and environment.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Run runs the command line args through the program's command tree
// (commands.go): help and usage errors (*cmdline.UsageError, exit status
// 2) as every Lifeboat program has them.
func (m *Main) Run(ctx context.Context, args []string) error {
	return m.program().Execute(ctx, args, m.Stdout, m.Stderr)
}

// dispatch runs the command of args.
func (m *Main) dispatch(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if buildinfo.IsVersionArg(args) {
		buildinfo.Print(m.Stdout, "lifeboat")
		return nil
	}
	fs := flag.NewFlagSet("lifeboat", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	var conn Conn
	conn.register(fs, m.Getenv)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return cmdline.Usagef("", "no command given")
	}
	switch args[0] {
	case "machines":
		return (&MachinesCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "points":
		return (&PointsCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "failover":
		return (&FailoverCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "vms":
		return (&VMsCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "drill":
		return (&DrillCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "commit":
		return (&CommitCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "failback":
		return (&FailbackCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "policy":
		return (&PolicyCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "prune":
		return (&PruneCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "group":
		return (&GroupCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "plan":
		return (&PlanCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "push-install":
		return (&PushInstallCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "servers":
		return (&ServersCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "move":
		return (&MoveCommand{main: m, conn: conn}).Run(ctx, args[1:])
	// The web console's accounts and audit log (docs/console.md).
	case "users":
		return (&UsersCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "audit":
		return (&AuditCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "test-failovers":
		return (&TestFailoversCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "bookmark":
		return (&BookmarkCommand{main: m, conn: conn}).Run(ctx, args[1:])
	case "help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		return cmdline.Usagef("", "unknown command %q", args[0])
	}
}

// Error is an error of the CLI with a hint for the operator.
type Error struct {
	Err    error
	Remedy string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// parseInterspersed parses flags that may come before, between and after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	return cmdline.ParseInterspersed(fs, args)
}

// printError prints err and its hint as every command does.
func printError(w io.Writer, err error) { cli.PrintError(w, "lifeboat", err) }
