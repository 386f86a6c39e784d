package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// DrillCommand is 'lifeboat drill': a machine's drill policy and results.
type DrillCommand struct {
	main *Main
	conn Conn
}

// Run shows or sets a machine's drill policy, or runs its drill now.
func (c *DrillCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	interval := fs.Duration("interval", 0, "with set: run a drill every `DURATION` (24h is usual; 0 turns drills off)")
	verify := fs.String("verify", "", "with set: `SCRIPT` on the SERVER HOST run once the guest is ready; its exit status decides")
	ready := fs.String("ready", "", "with set: `REGEX` of the console of a ready guest (default: a login prompt)")
	timeout := fs.Duration("timeout", 0, "with set: how long the guest may take to be ready (default 10m without KVM)")
	netw := fs.String("net", "", "with set: none (default) or isolated")
	port := fs.Int("guest-port", 0, "with set and --net isolated: the guest's TCP `PORT` to forward (default 22)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat drill list [--json]")
		fmt.Fprintln(fs.Output(), "       lifeboat drill show MACHINE [--json]")
		fmt.Fprintln(fs.Output(), "       lifeboat drill set MACHINE --interval 24h [--verify SCRIPT] [--ready REGEX] [--timeout 10m] [--net none|isolated]")
		fmt.Fprintln(fs.Output(), "       lifeboat drill run MACHINE [--json]   (now, and wait for it)")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] != "list" && len(pos) != 2 || pos[0] == "list" && len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("drill", "drill: give list, or show|set|run MACHINE")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	var st api.DrillStatus
	switch pos[0] {
	case "list":
		ds, err := a.Drills(ctx)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, ds)
		}
		return printDrills(c.main.Stdout, ds)
	case "show":
		st, err = a.Drill(ctx, pos[1])
	case "set":
		st, err = a.SetDrill(ctx, pos[1], api.DrillPolicy{IntervalSeconds: interval.Seconds(), Verify: *verify, Ready: *ready,
			TimeoutSeconds: timeout.Seconds(), Net: *netw, GuestPort: *port})
	case "run":
		st, err = a.RunDrill(ctx, pos[1])
	default:
		fs.Usage()
		return fmt.Errorf("drill: unknown subcommand %q", pos[0])
	}
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		if err := writeJSON(c.main.Stdout, st); err != nil {
			return err
		}
	} else if err := printDrill(c.main.Stdout, st); err != nil {
		return err
	}
	if pos[0] == "run" && st.LastDrill != nil && !st.LastDrill.Pass {
		return &Error{Err: fmt.Errorf("drill: failed: %s", firstLine(st.LastDrill.Reason)), Remedy: "read the console log on the server host: " + dash(st.LastDrill.ConsoleLog)}
	}
	return nil
}

// printDrill prints one machine's drill status.
func printDrill(w io.Writer, st api.DrillStatus) error {
	p := st.Policy
	if p.IntervalSeconds > 0 {
		fmt.Fprintf(w, "drills of %s every %s", st.Machine, time.Duration(p.IntervalSeconds*float64(time.Second)))
		if st.Next != nil {
			fmt.Fprintf(w, ", next %s", fmtTime(st.Next))
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "drills of %s: off ('lifeboat drill set %s --interval 24h')\n", st.Machine, st.Machine)
	}
	if p.Verify != "" {
		fmt.Fprintf(w, "verify: %s (on the server host)\n", p.Verify)
	}
	if st.Running {
		fmt.Fprintln(w, "a drill is running now")
	}
	if st.LastDrill != nil {
		fmt.Fprintln(w)
		if err := printBoot(w, *st.LastDrill); err != nil {
			return err
		}
	}
	if st.LastBootTest != nil {
		fmt.Fprintln(w)
		if err := printBoot(w, *st.LastBootTest); err != nil {
			return err
		}
	}
	return nil
}

// drillSummary is a one-line summary of a result: PASS point at time,
// ready in s.
func drillSummary(r *api.BootResult) string {
	if r == nil {
		return "-"
	}
	v := "PASS"
	if !r.Pass {
		v = "FAIL"
	}
	s := fmt.Sprintf("%s %s at %s, ready in %.1fs", v, r.Point.ID, fmtTime(&r.Started), r.BootToReadySeconds)
	if !r.Pass {
		s += ": " + firstLine(r.Reason)
	}
	return s
}

// printDrills prints every machine's drills as a table.
func printDrills(w io.Writer, ds []api.DrillStatus) error {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no drill policy or boot test yet")
		return nil
	}
	tw := table(w)
	fmt.Fprintln(tw, "MACHINE\tINTERVAL\tLAST DRILL\tLAST PASS\tLAST BOOT TEST")
	for _, d := range ds {
		iv := "off"
		if d.Policy.IntervalSeconds > 0 {
			iv = time.Duration(d.Policy.IntervalSeconds * float64(time.Second)).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Machine, iv, drillSummary(d.LastDrill), fmtTime(d.LastPass), drillSummary(d.LastBootTest))
	}
	return tw.Flush()
}

// printMachineDrills adds the last drill and boot test of each machine to
// 'lifeboat machines'; a server without /v1/drills has none to give.
func printMachineDrills(ctx context.Context, w io.Writer, a interface {
	Drills(ctx context.Context) ([]api.DrillStatus, error)
}) {
	ds, err := a.Drills(ctx)
	if err != nil || len(ds) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, d := range ds {
		if d.LastDrill != nil {
			fmt.Fprintf(w, "DRILL %s: %s\n", d.Machine, drillSummary(d.LastDrill))
		} else if d.Policy.IntervalSeconds > 0 {
			fmt.Fprintf(w, "DRILL %s: none yet\n", d.Machine)
		}
		if d.LastBootTest != nil {
			fmt.Fprintf(w, "BOOT TEST %s: %s\n", d.Machine, drillSummary(d.LastBootTest))
		}
	}
}
