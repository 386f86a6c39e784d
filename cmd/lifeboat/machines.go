package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// MachinesCommand is 'lifeboat machines'.
type MachinesCommand struct {
	main *Main
	conn Conn
}

// Run lists the machines (or runs reregister, revoke: identity.go).
func (c *MachinesCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "reregister" || args[0] == "revoke") {
		return c.identity(ctx, args[0], args[1:])
	}
	if len(args) > 0 && args[0] == "discard" {
		return c.discard(ctx, args[1:])
	}
	fs := flag.NewFlagSet("machines", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat machines [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cmdline.Usagef("machines", "machines: unexpected argument %q", pos[0])
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	ms, err := a.Machines(ctx)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, ms)
	}
	if len(ms) == 0 {
		fmt.Fprintln(c.main.Stdout, "no machine yet: register an agent with the passphrase")
		return nil
	}
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "MACHINE\tSTATE\tSERVER\tDISKS\tBACKLOG\tPOINTS\tLATEST POINT\tLATEST TIME\tLAST SEEN\tALERTS\tPROBLEMS")
	for _, m := range ms {
		var disks []string
		var backlog uint64
		for _, d := range m.Disks {
			disks = append(disks, d.Disk)
			applied := uint64(0)
			if d.Applied {
				applied = d.AppliedSeq + 1
			}
			if d.NextSeq > applied {
				backlog += d.NextSeq - applied
			}
		}
		ds := strings.Join(disks, ",")
		if ds == "" {
			ds = "-"
		}
		latest, latestTime := "-", "-"
		if m.LatestPoint != nil {
			latest = m.LatestPoint.ID + " (" + m.LatestPoint.Kind + ")"
			latestTime = fmtTime(&m.LatestPoint.Time)
		}
		problems := strings.Join(m.Problems, "; ")
		if problems == "" {
			problems = "-"
		}
		state := m.State
		if state == "" {
			state = "-"
		}
		var kinds []string
		for _, a := range m.Alerts {
			kinds = append(kinds, a.Alert)
		}
		alerts := strings.Join(kinds, ",")
		if alerts == "" {
			alerts = "-"
		}
		srv := m.ProcessServer
		if srv == "" {
			srv = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", m.Name, state, srv, ds, backlog, m.Points, latest, latestTime, fmtTime(m.LastSeen), alerts, problems)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Each alert on a line of its own, with its remedy.
	for _, m := range ms {
		for _, a := range m.Alerts {
			where := m.Name
			if a.Disk != "" {
				where += "/" + a.Disk
			}
			fmt.Fprintf(c.main.Stdout, "\nALERT %s %s (%s, since %s): %s\n  remedy: %s\n", a.Alert, where, a.Severity, fmtTime(&a.Since), a.Message, a.Remedy)
		}
	}
	printMachineDrills(ctx, c.main.Stdout, a)
	return nil
}
