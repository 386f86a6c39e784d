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

// FailbackCommand is 'lifeboat failback'.
type FailbackCommand struct {
	main *Main
	conn Conn
}

// diskMap is a repeatable DEV or DISK=DEV flag.
type diskMap []api.FailbackDiskRequest

func (d *diskMap) String() string { return "" }

func (d *diskMap) Set(v string) error {
	disk, dev, ok := strings.Cut(v, "=")
	if !ok {
		disk, dev = "", v
	}
	if dev == "" {
		return fmt.Errorf("%q: no device", v)
	}
	*d = append(*d, api.FailbackDiskRequest{Disk: disk, To: dev})
	return nil
}

// Run starts, shows, completes or cancels the failback of a machine.
func (c *FailbackCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failback", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	var to, from diskMap
	fs.Var(&to, "to", "on-premises block `DEV` to write back to (DISK=DEV for each disk of a machine with several); starts a failback")
	fs.Var(&from, "from", "recovered disk to read (`PATH` or DISK=PATH): default the loop device of the failover image, else the image")
	complete := fs.Bool("complete", false, "final cut: freeze the recovered machine's filesystems, send the last delta, verify and switch back")
	cancel := fs.Bool("cancel", false, "stop a running failback (the target disks stay part-written; the machine's state does not change)")
	interval := fs.Duration("interval", 0, "pause between delta passes (default 1s)")
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage:
  lifeboat failback MACHINE --to DEV|DISK=DEV [--to ...] [--from PATH|DISK=PATH] [--interval 1s] [--complete] [--json]
  lifeboat failback MACHINE --complete [--json]     final cut and switch-back of the running failback
  lifeboat failback MACHINE [--json]                show the running or last failback
  lifeboat failback MACHINE --cancel [--json]`)
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("failback", "failback: give one MACHINE")
	}
	m := pos[0]
	if *cancel && (*complete || len(to) > 0) {
		return &Error{Err: errors.New("failback: --cancel goes alone"), Remedy: "run 'lifeboat failback " + m + " --cancel'"}
	}
	if len(from) > 0 && len(to) == 0 {
		return &cmdline.UsageError{Command: "failback", Err: errors.New("failback: --from needs --to"), Remedy: "give --to DEV for the on-premises disk"}
	}
	req := api.FailbackRequest{Disks: to, IntervalSeconds: interval.Seconds()}
	for _, f := range from {
		matched := false
		for i := range req.Disks {
			if f.Disk == req.Disks[i].Disk || f.Disk == "" && len(req.Disks) == 1 {
				req.Disks[i].From = f.To
				matched = true
			}
		}
		if !matched {
			return &Error{Err: fmt.Errorf("failback: --from %s=%s names no disk given to --to", f.Disk, f.To), Remedy: "use the same DISK in --to DISK=DEV and --from DISK=PATH"}
		}
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()

	var st api.FailbackStatus
	switch {
	case *cancel:
		st, err = a.CancelFailback(ctx, m)
	case len(to) > 0:
		if st, err = a.StartFailback(ctx, m, req); err != nil {
			break
		}
		if !*asJSON {
			fmt.Fprintf(c.main.Stdout, "failback of %s started: comparing checksums\n", m)
		}
		// Wait for the compare: it is what must travel before deltas.
		for st.Phase == api.FailbackComparing {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			if st, err = a.Failback(ctx, m); err != nil {
				return callError(err, u)
			}
		}
		if *complete && st.Phase == api.FailbackDelta {
			st, err = a.CompleteFailback(ctx, m)
		}
	case *complete:
		st, err = a.CompleteFailback(ctx, m)
	default:
		st, err = a.Failback(ctx, m)
	}
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		err = writeJSON(c.main.Stdout, st)
	} else {
		err = printFailback(c.main.Stdout, st)
	}
	if err != nil {
		return err
	}
	if st.Phase == api.FailbackFailed {
		return &Error{Err: fmt.Errorf("failback of %s failed: %s", m, st.Error), Remedy: st.Hint}
	}
	return nil
}

// printFailback prints a failback as a table and a summary.
func printFailback(w io.Writer, st api.FailbackStatus) error {
	tw := table(w)
	fmt.Fprintln(tw, "DISK\tSOURCE\tTARGET\tTRACKED\tCOMPARED\tDIFFER\tSENT\tDELTA\tVERIFIED\tVERIFY FIXED")
	for _, d := range st.Disks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Disk, d.Source, d.Target, d.Tracked,
			fmtBytes(d.ComparedBytes), fmtBytes(d.DifferBytes), fmtBytes(d.SentBytes), fmtBytes(d.DeltaBytes),
			fmtBytes(d.VerifiedBytes), fmtBytes(d.VerifyFixedBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ratio := "-"
	if st.DifferBytes > 0 {
		ratio = fmt.Sprintf("%.3f", float64(st.SentBytes)/float64(st.DifferBytes))
	}
	fmt.Fprintf(w, "compared %s, differ %s, sent %s (sent/differ %s), %d delta passes, %.1f s\n",
		fmtBytes(st.ComparedBytes), fmtBytes(st.DifferBytes), fmtBytes(st.SentBytes), ratio, st.Passes, st.DurationSeconds)
	switch st.Phase {
	case api.FailbackDone:
		if len(st.Frozen) > 0 {
			fmt.Fprintf(w, "final cut with %s frozen for %.3f s\n", strings.Join(st.Frozen, ", "), st.FreezeSeconds)
		}
		fmt.Fprintf(w, "%s is %s: the on-premises disks equal the recovered ones (verified by checksums); stop the recovered machine and register the agent again to protect it\n", st.Machine, st.State)
	case api.FailbackFailed, api.FailbackCanceled:
		fmt.Fprintf(w, "failback %s: %s\n", st.Phase, st.Error)
	default:
		fmt.Fprintf(w, "%s is %s (phase %s): deltas go on while the recovered machine runs; 'lifeboat failback %s --complete' makes the final cut and switches back\n",
			st.Machine, st.State, st.Phase, st.Machine)
	}
	return nil
}
