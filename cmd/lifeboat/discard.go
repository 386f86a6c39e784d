package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// discard runs 'lifeboat machines discard NAME DISK SEQ': the segment of a
// disk whose apply keeps failing is dropped, with the later ones not
// applied, and the agent resyncs the disk (docs/server.md).
func (c *MachinesCommand) discard(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("machines discard", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat machines discard NAME DISK SEQ [--json]\n\n"+
			"Drops segment SEQ of the disk, whose apply keeps failing ('lifeboat machines' names it),\n"+
			"and the later segments not applied; the agent then resyncs the disk.")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		fs.Usage()
		return cmdline.Usagef("machines discard", "machines discard: give the machine, the disk and the segment's sequence number, as the apply-failing problem names them")
	}
	seq, err := strconv.ParseUint(pos[2], 10, 64)
	if err != nil {
		return cmdline.Usagef("machines discard", "machines discard: sequence number %q is not a decimal integer", pos[2])
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	ans, err := a.Discard(ctx, pos[0], pos[1], seq)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, ans)
	}
	fmt.Fprintf(c.main.Stdout, "disk %s of %s: %d segment(s) from %d discarded on process server %s; the agent resyncs the disk from segment %d ('lifeboat machines' shows it)\n",
		ans.Disk, ans.Machine, ans.Count, ans.Seq, ans.ProcessServer, ans.NextSeq)
	return nil
}
