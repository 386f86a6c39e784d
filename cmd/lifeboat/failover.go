package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
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
	test := fs.Bool("test", false, "test failover: replication goes on and the machine's state does not change")
	out := fs.String("out", "", "`DIR` on the server host to write <disk>.img into")
	toBlob := fs.String("to-blob", "", "instead of --out: a `CONTAINER` of the blob store's account to write each disk into as a new VHD page blob <machine>/<point>/<disk>.vhd")
	check := fs.Bool("check", false, "check the filesystems of every image read-only (e2fsck -fn, xfs_repair -n)")
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	group := fs.String("group", "", "fail over every machine of a replication `GROUP` at one group point, into DIR/<machine>/<disk>.img")
	var bf bootFlags
	bf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat failover MACHINE --point ID|latest|latest-app [--test] --out DIR [--check] [--json]")
		fmt.Fprintln(fs.Output(), "       lifeboat failover MACHINE --point ID|latest|latest-app [--test] --to-blob CONTAINER [--json]")
		fmt.Fprintln(fs.Output(), "       lifeboat failover MACHINE --point ID|latest --test --boot [--net none|isolated] [--ready REGEX] [--timeout 10m] [--verify SCRIPT] [--out DIR] [--keep] [--json]")
		fmt.Fprintln(fs.Output(), "       lifeboat failover --group NAME --point ID|latest [--test] --out DIR [--check] [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *toBlob != "" && (*group != "" || bf.boot || *out != "" || *check) {
		return &Error{Err: errors.New("failover: --to-blob goes with one MACHINE, without --out, --check, --boot or --group"),
			Remedy: "fail over to blobs on its own; to check or boot a point first, use --test --out DIR --check or --test --boot"}
	}
	if *group != "" {
		if err := bf.unused(); err != nil || bf.boot {
			return errors.Join(err, errors.New("failover: --boot is for one MACHINE, not --group"))
		}
		return c.runGroup(ctx, pos, *group, *point, *out, *test, *check, *asJSON)
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("failover", "failover: give one MACHINE")
	}
	if *point == "" {
		return &cmdline.UsageError{Command: "failover", Err: errors.New("failover: --point is required"), Remedy: "give --point latest, --point latest-app, or an id from 'lifeboat points " + pos[0] + "'"}
	}
	if bf.boot {
		return c.runBoot(ctx, pos[0], *point, *out, *test, *check, *asJSON, bf)
	}
	if err := bf.unused(); err != nil {
		return err
	}
	if *out == "" && *toBlob == "" {
		return &cmdline.UsageError{Command: "failover", Err: errors.New("failover: --out is required"), Remedy: "give --out DIR: the server writes DIR/<disk>.img on its host (or --to-blob CONTAINER with a blob store)"}
	}
	var dir string
	if *out != "" {
		var err error
		if dir, err = filepath.Abs(*out); err != nil {
			return err
		}
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	pointID, err := resolvePoint(ctx, a, pos[0], *point)
	if err != nil {
		return callError(err, u)
	}
	res, err := a.Failover(ctx, pos[0], api.FailoverRequest{Point: pointID, Test: *test, Out: dir, Check: *check, ToBlob: *toBlob})
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		err = writeJSON(c.main.Stdout, res)
	} else {
		err = printFailover(c.main.Stdout, res)
	}
	if err != nil {
		return err
	}
	return checkFailed(res)
}

// printFailover prints the result of a failover as tables.
func printFailover(w io.Writer, res api.FailoverResult) error {
	kind := "failover"
	if res.Test {
		kind = "test failover"
	}
	fmt.Fprintf(w, "%s of %s at point %s (%s, %s) in %.1f s\n", kind, res.Machine, res.Point.ID, res.Point.Kind,
		tableTime(res.Point.Time), res.DurationSeconds)
	tw := table(w)
	fmt.Fprintln(tw, "DISK\tIMAGE\tSIZE")
	for _, im := range res.Images {
		where := im.Path
		if where == "" {
			where = im.URL
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Disk, where, fmtBytes(im.Size))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Checks) > 0 {
		fmt.Fprintln(w)
		if err := printChecks(w, res.Checks); err != nil {
			return err
		}
	}
	if !res.Test {
		fmt.Fprintln(w)
		if res.State == api.StateFailedOver {
			fmt.Fprintf(w, "%s is now %s; replication of the old source goes on until 'lifeboat commit %s'\n", res.Machine, res.State, res.Machine)
		} else {
			fmt.Fprintf(w, "%s stays %s: the check failed, so the failover was not recorded\n", res.Machine, res.State)
		}
	}
	return nil
}

// printChecks prints filesystem checks as a table.
func printChecks(w io.Writer, cs []api.FSCheck) error {
	tw := table(w)
	fmt.Fprintln(tw, "DISK\tPART\tOFFSET\tTYPE\tTOOL\tEXIT\tRESULT\tSUMMARY")
	for _, c := range cs {
		part := "whole"
		if c.Partition > 0 {
			part = strconv.Itoa(c.Partition)
		}
		exit := "-"
		if c.ExitStatus >= 0 {
			exit = strconv.Itoa(c.ExitStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Disk, part, c.Offset, dash(c.Type), dash(c.Tool), exit, c.Result, c.Summary)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkFailed returns the error of a failover whose check failed.
func checkFailed(res api.FailoverResult) error {
	if res.CheckOK {
		return nil
	}
	for _, c := range res.Checks {
		if !c.OK {
			part := "whole disk"
			if c.Partition > 0 {
				part = "partition " + strconv.Itoa(c.Partition)
			}
			hint := "the images are kept: inspect them, or fail over to an earlier point (an app-consistent point, --point latest-app, has clean filesystems)"
			if !res.Test {
				hint += "; the machine's state did not change"
			}
			return &Error{Err: fmt.Errorf("failover: filesystem check failed: disk %s, %s: %s: %s", c.Disk, part, c.Result, c.Summary), Remedy: hint}
		}
	}
	return &Error{Err: errors.New("failover: filesystem check failed")}
}

// runGroup fails over every machine of a group at one group point.
func (c *FailoverCommand) runGroup(ctx context.Context, pos []string, group, point, out string, test, check, asJSON bool) error {
	if len(pos) != 0 {
		return cmdline.Usagef("failover", "failover: give MACHINE or --group, not both")
	}
	if point == "" {
		return &cmdline.UsageError{Command: "failover", Err: errors.New("failover: --point is required"), Remedy: "give --point latest or an id from 'lifeboat points --group " + group + "'"}
	}
	if out == "" {
		return &cmdline.UsageError{Command: "failover", Err: errors.New("failover: --out is required"), Remedy: "give --out DIR: the server writes DIR/<machine>/<disk>.img on its host"}
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	res, err := a.GroupFailover(ctx, group, api.GroupFailoverRequest{Point: point, Test: test, Out: dir, Check: check})
	if err != nil {
		return callError(err, u)
	}
	if asJSON {
		err = writeJSON(c.main.Stdout, res)
	} else {
		fmt.Fprintf(c.main.Stdout, "group %s at point %s (%s)\n\n", res.Group, res.Point.ID, tableTime(res.Point.Time))
		for _, m := range res.Machines {
			if err = printFailover(c.main.Stdout, m); err != nil {
				break
			}
			fmt.Fprintln(c.main.Stdout)
		}
	}
	if err != nil {
		return err
	}
	for _, m := range res.Machines {
		if err := checkFailed(m); err != nil {
			return err
		}
	}
	return nil
}
