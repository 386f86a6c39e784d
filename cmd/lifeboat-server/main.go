// Command lifeboat-server runs Lifeboat's server roles: the configuration
// server (registration, admin API), the process server (the replication
// gateway) and the master target. See docs/server.md.
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
	"github.com/lifeboat-dr/lifeboat/internal/cmd/sysservice"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/server"
)

const usage = `lifeboat-server: Lifeboat's configuration, process and master-target server

Usage:
  lifeboat-server init --data DIR [--san NAME...]   create the CA, certificates and passphrase
  lifeboat-server run  --data DIR [--api ADDR] [--listen ADDR] [--roles config,process,mastertarget]
  lifeboat-server install|uninstall|start|stop|restart|status [--config FILE] [--init auto|systemd|sysv]
                     the system service, running 'run --config FILE' (default /etc/lifeboat/server.toml)
  lifeboat-server admin-cert renew|show --data DIR  renew (revoking the old) or show the admin certificate
  lifeboat-server check-config [--config FILE]      say whether the service can start with FILE
  lifeboat-server completion bash|zsh|fish          print a shell completion script
  lifeboat-server --version                         print the version of this build

Run 'lifeboat-server COMMAND --help' for the flags of a command. Exit status: 0 done,
1 failed, 2 usage error (unknown command or flag, bad value, missing argument);
the service verbs: 3 not running, 4 not installed, 6 not configured.
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
		os.Exit(sysservice.ExitCode(err))
	}
}

// Main is the program, with its streams and environment.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, if set, is called by run once the server serves (tests).
	Ready func(*server.Server)
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
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return cmdline.Usagef("", "no command given")
	}
	switch args[0] {
	case "init":
		return (&InitCommand{main: m}).Run(ctx, args[1:])
	case "run":
		return sysservice.Run(ctx, "lifeboat-server", func(ctx context.Context) error {
			return (&RunCommand{main: m}).Run(ctx, args[1:])
		})
	case "admin-cert":
		return (&AdminCertCommand{main: m}).Run(ctx, args[1:])
	case "install", "uninstall", "start", "stop", "restart", "status", "check-config":
		return sysservice.Command(args[0], args[1:], m.service(), m.Stdout, m.Stderr)
	case "-h", "--help", "help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	case "--version", "-version", "version":
		buildinfo.Print(m.Stdout, "lifeboat-server")
		return nil
	default:
		return cmdline.Usagef("", "unknown command %q", args[0])
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// noArgs refuses positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return cmdline.Usagef(fs.Name(), "%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// printError prints err and its hint as every command does.
func printError(w io.Writer, err error) { cli.PrintError(w, "lifeboat-server", err) }
