// Command lifeboat-agent is Lifeboat's mobility agent: it tracks the changed
// blocks of the protected disks and replicates them to a process server.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
	"github.com/lifeboat-dr/lifeboat/internal/cli"
	"github.com/lifeboat-dr/lifeboat/internal/cmd/sysservice"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

const usage = `lifeboat-agent: Lifeboat's mobility agent

Usage:
  lifeboat-agent run --server HOST:PORT --passphrase-file F --disk DEV [--disk DEV...] --state DIR [--name MACHINE]
                                                             replicate the disks to the process server
  lifeboat-agent track --disk DEV [--disk DEV...] [--json]   print changed extents live
  lifeboat-agent install|uninstall|start|stop|restart|status [--config FILE] [--init auto|systemd|sysv]
                                                             the system service, running 'run --config FILE'
                                                             (default /etc/lifeboat/agent.toml)
  lifeboat-agent check-config [--config FILE]                say whether the service can start with FILE
  lifeboat-agent release-tracker [--config FILE]             end tracking left pinned by a stopped agent (package removal)
  lifeboat-agent completion bash|zsh|fish                    print a shell completion script
  lifeboat-agent --version                                   print the version of this build

Run 'lifeboat-agent COMMAND --help' for the flags of a command. Exit status: 0 done,
1 failed, 2 usage error (unknown command or flag, bad value, missing argument);
the service verbs: 3 not running, 4 not installed, 6 not configured.
`

func main() {
	if ok, code := runAsWindowsService(); ok {
		os.Exit(code)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { cancel(&stopSignal{<-sigs}) }()
	if err := program().Execute(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		cli.PrintError(os.Stderr, "lifeboat-agent", err)
		if cmdline.IsUsage(err) {
			os.Exit(2)
		}
		os.Exit(sysservice.ExitCode(err))
	}
}

// runWith runs the command of args (through the command tree of
// commands.go from main).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cmdline.Usagef("", "no command given")
	}
	switch args[0] {
	case "track":
		if err := unsupported("track"); err != nil {
			return err
		}
		return (&trackCommand{out: stdout, errOut: stderr}).Run(ctx, args[1:])
	case "run":
		if err := unsupported("run"); err != nil {
			return err
		}
		return (&runCommand{out: stdout, errOut: stderr}).Run(ctx, args[1:])
	case "release-tracker":
		return releaseTrackerCommand(args[1:], stdout, stderr)
	case "install", "uninstall", "start", "stop", "restart", "status", "check-config":
		return sysservice.Command(args[0], args[1:], agentService(stdout, stderr), stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "--version", "-version", "version":
		buildinfo.Print(stdout, "lifeboat-agent")
		return nil
	default:
		return cmdline.Usagef("", "unknown command %q", args[0])
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// stopSignal is the cause of a stop by a signal: the log says which.
type stopSignal struct{ sig os.Signal }

func (s *stopSignal) Error() string { return "signal " + s.sig.String() }
