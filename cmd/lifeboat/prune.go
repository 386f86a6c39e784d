package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// PruneCommand is 'lifeboat prune'.
type PruneCommand struct {
	main *Main
	conn Conn
}

// Run applies a machine's retention policy now.
func (c *PruneCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("prune", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat prune MACHINE [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("prune", "prune: give one MACHINE")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	res, err := a.Prune(ctx, pos[0])
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, res)
	}
	p := res.Policy
	fmt.Fprintf(c.main.Stdout, "pruned %s (window %s, keep all %s, thin %s)\n", res.Machine, fmtDur(p.WindowSeconds), fmtDur(p.KeepAllSeconds), fmtDur(p.ThinSeconds))
	fmt.Fprintf(c.main.Stdout, "merged %d segments (%s) into the replica base\n", res.Result.MergedSegments, fmtBytes(res.Result.MergedBytes))
	dropped := "none"
	if len(res.Result.DroppedPoints) > 0 {
		dropped = strings.Join(res.Result.DroppedPoints, ",")
	}
	fmt.Fprintf(c.main.Stdout, "points no longer materializable: %s\n", dropped)
	return nil
}
