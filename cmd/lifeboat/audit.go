package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// AuditCommand is 'lifeboat audit': the newest entries of the audit log.
type AuditCommand struct {
	main *Main
	conn Conn
}

// Run prints the audit log.
func (c *AuditCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/console.md)")
	limit := fs.Int("limit", 100, "the newest `N` entries")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat audit [--limit N] [--json]\n\nWho did what in the web console and with the accounts, when, and how it ended.")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cmdline.Usagef("audit", "audit: unexpected argument %q", pos[0])
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	es, err := a.Audit(ctx, *limit)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, es)
	}
	if len(es) == 0 {
		fmt.Fprintln(c.main.Stdout, "the audit log is empty: nothing was done in the console yet")
		return nil
	}
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "TIME\tUSER\tACTION\tTARGET\tRESULT\tFROM")
	for _, e := range es {
		target, from := e.Target, e.Remote
		if target == "" {
			target = "-"
		}
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.User, e.Action, target, e.Result, from)
	}
	return tw.Flush()
}
