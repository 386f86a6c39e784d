package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// TestFailoversCommand is 'lifeboat test-failovers': the test failovers
// whose images are kept on the server host, and their cleanup.
type TestFailoversCommand struct {
	main *Main
	conn Conn
}

// Run lists the test failovers, or cleans some up.
func (c *TestFailoversCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("test-failovers", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	machine := fs.String("machine", "", "only the test failovers of `MACHINE` (list, or cleanup of all of them)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat test-failovers [--machine M] [--json]        list the test failovers whose images are kept")
		fmt.Fprintln(fs.Output(), "       lifeboat test-failovers cleanup ID...|--machine M     remove the images they wrote")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	out := c.main.Stdout
	switch {
	case len(pos) == 0:
	case pos[0] == "cleanup":
		ids := pos[1:]
		if len(ids) > 0 && *machine != "" || len(ids) == 0 && *machine == "" {
			fs.Usage()
			return cmdline.Usagef("test-failovers cleanup", "test-failovers cleanup: give the IDs, or --machine M for all of a machine's")
		}
		if *machine != "" {
			tfs, err := a.TestFailovers(ctx, *machine)
			if err != nil {
				return callError(err, u)
			}
			for _, tf := range tfs {
				ids = append(ids, tf.ID)
			}
			if len(ids) == 0 {
				fmt.Fprintf(out, "no test failover of %s to clean up\n", *machine)
				return nil
			}
		}
		for _, id := range ids {
			r, err := a.CleanupTestFailover(ctx, id)
			if err != nil {
				return callError(err, u)
			}
			if *asJSON {
				if err := writeJSON(out, r); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(out, "test failover %s of %s: %d image(s) removed", r.ID, r.Machine, len(r.Removed))
			if len(r.Missing) > 0 {
				fmt.Fprintf(out, ", %d already gone", len(r.Missing))
			}
			if len(r.Kept) > 0 {
				fmt.Fprintf(out, ", %d kept (a real failover uses them)", len(r.Kept))
			}
			fmt.Fprintln(out)
		}
		return nil
	default:
		fs.Usage()
		return cmdline.Usagef("test-failovers", "test-failovers: give no argument, or cleanup with the IDs")
	}
	tfs, err := a.TestFailovers(ctx, *machine)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(out, tfs)
	}
	if len(tfs) == 0 {
		fmt.Fprintln(out, "no test failover whose images are kept")
		return nil
	}
	tw := table(out)
	fmt.Fprintln(tw, "ID\tMACHINE\tPOINT\tTIME\tIMAGES\tOUT")
	for _, tf := range tfs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", tf.ID, tf.Machine, tf.Point.ID, fmtTime(&tf.Time), len(tf.Images), tf.Out)
	}
	return tw.Flush()
}
