package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// PointsCommand is 'lifeboat points'.
type PointsCommand struct {
	main *Main
	conn Conn
}

// Run lists the recovery points of a machine.
func (c *PointsCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("points", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	group := fs.String("group", "", "list the points of a replication `GROUP` (each one point across its machines)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat points MACHINE [--json] | lifeboat points --group NAME [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *group != "" {
		if len(pos) != 0 {
			fs.Usage()
			return cmdline.Usagef("points", "points: give MACHINE or --group, not both")
		}
		a, u, err := c.conn.Admin()
		if err != nil {
			return err
		}
		defer a.CloseIdleConnections()
		pts, err := a.GroupPoints(ctx, *group)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, pts)
		}
		return printGroupPoints(c.main.Stdout, *group, pts)
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("points", "points: give one MACHINE")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	pts, err := a.Points(ctx, pos[0])
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, pts)
	}
	if len(pts) == 0 {
		fmt.Fprintf(c.main.Stdout, "no recovery point of %s yet\n", pos[0])
		return nil
	}
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "ID\tTIME\tKIND\tFREEZE\tMATERIALIZABLE\tGEN\tDISKS")
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.ID, tableTime(p.Time), p.Kind,
			fmtFreeze(p), yesNo(p.Materializable), p.Gen, strings.Join(p.Disks, ","))
	}
	return tw.Flush()
}

// fmtFreeze formats a point's freeze time in milliseconds, "-" for a
// point that froze nothing.
func fmtFreeze(p api.Point) string {
	if p.FreezeNS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(p.FreezeNS)/1e6)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// pointLister lists a machine's points (the admin client).
type pointLister interface {
	Points(ctx context.Context, machine string) ([]api.Point, error)
}

// resolvePoint turns what the operator typed for --point into a point id:
// latest and latest-app as they are, else the one point of the machine
// whose id starts with it (any unique prefix, like a git commit); an id
// that matches none goes to the server as typed, which says it is unknown.
func resolvePoint(ctx context.Context, a pointLister, machine, point string) (string, error) {
	if point == "latest" || point == "latest-app" || point == "" {
		return point, nil
	}
	pts, err := a.Points(ctx, machine)
	if err != nil {
		return "", err
	}
	var match []string
	for _, p := range pts {
		if p.ID == point {
			return point, nil
		}
		if strings.HasPrefix(p.ID, point) {
			match = append(match, p.ID)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		// The server answers for an id it does not know (404, with
		// its hint).
		return point, nil
	}
	if len(match) > 5 {
		match = append(match[:5], "…")
	}
	return "", &Error{Err: fmt.Errorf("%q names several points of %s: %s", point, machine, strings.Join(match, ", ")),
		Remedy: "give more characters of the id"}
}
