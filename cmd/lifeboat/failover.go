package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/api"
)

// FailoverCommand is 'lifeboat failover'.
type FailoverCommand struct {
	main *Main
	conn Conn
}

// Run materializes a machine's disks at a point on the server host.
func (c *FailoverCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	point := fs.String("point", "", "recovery point: an `ID`, latest or latest-app")
	test := fs.Bool("test", false, "test failover: replication goes on untouched")
	out := fs.String("out", "", "`DIR` on the server host to write <disk>.img into")
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat failover MACHINE --point ID|latest|latest-app [--test] --out DIR [--json]")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("failover: give one MACHINE")
	}
	if *point == "" {
		return &Error{Err: errors.New("failover: --point is required"), Hint: "give --point latest, --point latest-app, or an id from 'lifeboat points " + pos[0] + "'"}
	}
	if *out == "" {
		return &Error{Err: errors.New("failover: --out is required"), Hint: "give --out DIR: the server writes DIR/<disk>.img on its host"}
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	res, err := a.Failover(ctx, pos[0], api.FailoverRequest{Point: *point, Test: *test, Out: dir})
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, res)
	}
	kind := "failover"
	if res.Test {
		kind = "test failover"
	}
	fmt.Fprintf(c.main.Stdout, "%s of %s at point %s (%s, %s)\n", kind, res.Machine, res.Point.ID, res.Point.Kind, res.Point.Time.UTC().Format(time.RFC3339Nano))
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "DISK\tIMAGE\tSIZE")
	for _, im := range res.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Disk, im.Path, fmtBytes(im.Size))
	}
	return tw.Flush()
}
