package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// MoveCommand is 'lifeboat move'.
type MoveCommand struct {
	main *Main
	conn Conn
}

// Run moves a machine to another process server.
func (c *MoveCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("move", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	to := fs.String("to", "", "`SERVER` id to move to ('lifeboat servers' lists them)")
	force := fs.Bool("force", false, "do not drain the current process server (it is gone for good): what it acknowledged but did not apply is lost and the disks resync")
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat move MACHINE --to SERVER [--force] [--json]\n\nMoves a machine to another process server without resync: the current one applies\nevery segment it acknowledged, then the agent replicates to the new one.")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *to == "" {
		fs.Usage()
		return cmdline.Usagef("move", "move: give one MACHINE and --to SERVER")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	res, err := a.Move(ctx, pos[0], api.MoveRequest{To: *to, Force: *force})
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, res)
	}
	fmt.Fprintf(c.main.Stdout, "%s moved from process server %s to %s (epoch %d)\n", res.Machine, res.From, res.To, res.Epoch)
	if res.Forced {
		fmt.Fprintln(c.main.Stdout, "forced: the old process server was not drained; the disks resync if it had acknowledged segments it did not apply")
	}
	for _, d := range res.Drained {
		if d.Applied {
			fmt.Fprintf(c.main.Stdout, "  %s: every acknowledged segment applied, up to %d; the new server resumes at %d\n", d.Disk, d.AppliedSeq, d.NextSeq)
		} else {
			fmt.Fprintf(c.main.Stdout, "  %s: nothing applied yet\n", d.Disk)
		}
	}
	fmt.Fprintln(c.main.Stdout, "the agent switches within seconds (it polls the configuration server); 'lifeboat machines' shows the assignment")
	return nil
}
