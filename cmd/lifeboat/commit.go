package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// CommitCommand is 'lifeboat commit'.
type CommitCommand struct {
	main *Main
	conn Conn
}

// Run commits the failover of a machine: protection of its old source
// ends.
func (c *CommitCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("commit", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print the machine as JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat commit MACHINE [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("commit", "commit: give one MACHINE")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	m, err := a.Commit(ctx, pos[0])
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, m)
	}
	when := "-"
	if m.Committed != nil {
		when = m.Committed.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(c.main.Stdout, "%s committed at %s: the server refuses the old source's replication from now on\n", m.Name, when)
	if m.Failover != nil {
		fmt.Fprintf(c.main.Stdout, "failed over to point %s (%s) into %s\n", m.Failover.Point.ID, m.Failover.Point.Kind, m.Failover.Out)
	}
	fmt.Fprintln(c.main.Stdout, "the replica and its points stay readable ('lifeboat failover --test'); the source machine itself was not touched")
	return nil
}
