package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// GroupCommand is 'lifeboat group'.
type GroupCommand struct {
	main *Main
	conn Conn
}

const groupUsage = `Usage:
  lifeboat group create NAME --machines A,B[,...] [--interval 5m] [--json]
  lifeboat group list [--json]
  lifeboat group show|delete NAME [--json]
  lifeboat group point NAME [--wait 2m] [--json]
`

// Run manages replication groups.
func (c *GroupCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.main.Stderr, groupUsage)
		return cmdline.Usagef("group", "group: give a subcommand")
	}
	sub := args[0]
	fs := flag.NewFlagSet("group "+sub, flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	machines := fs.String("machines", "", "create: the members, comma-separated (the first by name coordinates)")
	interval := fs.Duration("interval", api.DefaultGroupInterval, "create: how often the group cuts a point (negative: only on 'lifeboat group point')")
	wait := fs.Duration("wait", 0, "point: how long to wait for the outcome (default: the server's, 2m)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), groupUsage); cmdline.PrintDefaults(fs) }
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	want := 1
	if sub == "list" {
		want = 0
	}
	if len(pos) != want {
		fs.Usage()
		return cmdline.Usagef("group", "group %s: give %d NAME", sub, want)
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	out := c.main.Stdout
	switch sub {
	case "create":
		if *machines == "" {
			return &cmdline.UsageError{Command: "group", Err: errors.New("group create: --machines is required"), Remedy: "give --machines A,B: the machines 'lifeboat machines' lists"}
		}
		iv := int64(*interval / time.Second)
		if *interval < 0 {
			iv = -1
		} else if iv == 0 {
			return &Error{Err: errors.New("group create: --interval under 1s"), Remedy: "give at least 1s, or a negative value for points on request only"}
		}
		g, err := a.CreateGroup(ctx, api.GroupRequest{Name: pos[0], Machines: strings.Split(*machines, ","), IntervalSeconds: iv})
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(out, g)
		}
		return printGroup(out, g)
	case "list":
		gs, err := a.Groups(ctx)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(out, gs)
		}
		tw := table(out)
		fmt.Fprintln(tw, "NAME\tMACHINES\tCOORDINATOR\tINTERVAL\tPOINTS\tLAST")
		for _, g := range gs {
			last := "-"
			if r := g.LastResult; r != nil {
				last = "ok"
				if !r.OK {
					last = "failed at " + r.Phase
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", g.Name, strings.Join(g.Machines, ","), g.Coordinator, fmtInterval(g.IntervalSeconds), g.Points, last)
		}
		return tw.Flush()
	case "show", "delete":
		var g api.Group
		if sub == "show" {
			g, err = a.Group(ctx, pos[0])
		} else {
			g, err = a.DeleteGroup(ctx, pos[0])
		}
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(out, g)
		}
		if sub == "delete" {
			fmt.Fprintf(out, "group %s deleted; its members' points stay listed per machine\n", g.Name)
			return nil
		}
		return printGroup(out, g)
	case "point":
		w := ""
		if *wait > 0 {
			w = wait.String()
		}
		r, err := a.GroupPoint(ctx, pos[0], w)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			if err := writeJSON(out, r); err != nil {
				return err
			}
		} else if r.OK {
			fmt.Fprintln(out, r.ID)
		}
		if !r.OK {
			return &Error{Err: fmt.Errorf("group point %s of %s failed at %s (machines %s): %s", r.ID, r.Group, r.Phase, strings.Join(r.Failed, ","), r.Error),
				Remedy: "replication goes on; check that those agents run and reach each other's --group-listen address, then try again"}
		}
		return nil
	default:
		fmt.Fprint(c.main.Stderr, groupUsage)
		return fmt.Errorf("group: unknown subcommand %q", sub)
	}
}

func fmtInterval(s int64) string {
	if s < 0 {
		return "on request"
	}
	return (time.Duration(s) * time.Second).String()
}

func printGroup(w io.Writer, g api.Group) error {
	fmt.Fprintf(w, "group %s: coordinator %s, a point every %s, %d points listed\n", g.Name, g.Coordinator, fmtInterval(g.IntervalSeconds), g.Points)
	tw := table(w)
	fmt.Fprintln(tw, "MACHINE\tGROUP ADDRESS\tSEEN")
	for _, m := range g.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Machine, dash(m.Addr), fmtTime(m.Seen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := g.LatestPoint; p != nil {
		fmt.Fprintf(w, "latest point: %s at %s\n", p.ID, tableTime(p.Time))
	}
	if r := g.LastResult; r != nil && r.OK {
		fmt.Fprintf(w, "last attempt: %s ok\n", r.ID)
	}
	for _, p := range g.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
	return nil
}

// printGroupPoints lists group points as a table.
func printGroupPoints(w io.Writer, group string, pts []api.GroupPoint) error {
	if len(pts) == 0 {
		fmt.Fprintf(w, "no group point of %s yet\n", group)
		return nil
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tTIME\tKIND\tFREEZE\tMATERIALIZABLE\tMACHINES")
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f ms\t%s\t%s\n", p.ID, tableTime(p.Time), p.Kind,
			p.FreezeSeconds*1000, yesNo(p.Materializable), strings.Join(p.Machines, ","))
	}
	return tw.Flush()
}
