package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// PolicyCommand is 'lifeboat policy set|show'.
type PolicyCommand struct {
	main *Main
	conn Conn
}

const policyUsage = `Usage:
  lifeboat policy show MACHINE [--json]
  lifeboat policy set  MACHINE [--window 24h] [--keep-all 2h] [--thin 1h] [--default]
                       [--drill-interval 24h] [--drill-verify SCRIPT] [--drill-timeout 10m] [--json]
(the drill keys are those of 'lifeboat drill set', docs/boot.md)
`

// Run shows or sets a machine's retention policy.
func (c *PolicyCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.main.Stderr, policyUsage)
		return cmdline.Usagef("policy", "policy: give show or set")
	}
	sub := args[0]
	if sub != "show" && sub != "set" {
		fmt.Fprint(c.main.Stderr, policyUsage)
		return cmdline.Usagef("policy", "policy: unknown command %q (want show or set)", sub)
	}
	fs := flag.NewFlagSet("policy "+sub, flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	var window, keepAll, thin, drillEvery, drillTimeout durationFlag
	def := new(bool)
	var drillVerify stringFlag
	if sub == "set" {
		fs.Var(&drillEvery, "drill-interval", "run a boot-verified drill every `DURATION` (0: off, the default)")
		fs.Var(&drillVerify, "drill-verify", "`SCRIPT` on the server host run once a drill's guest is ready; its exit status decides")
		fs.Var(&drillTimeout, "drill-timeout", "how long a drill's guest may take to be ready (default 10m without KVM)")
		fs.Var(&window, "window", "every point younger than this `DURATION` stays materializable (default 24h)")
		fs.Var(&keepAll, "keep-all", "every point of this recent `DURATION` is kept (default 2h)")
		fs.Var(&thin, "thin", "older points in the window are thinned to one per `DURATION` (default 1h)")
		def = fs.Bool("default", false, "go back to the default policy (24h window, keep all 2h, thin 1h)")
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), policyUsage)
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("policy", "policy %s: give one MACHINE", sub)
	}
	m := pos[0]
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	p, err := a.Policy(ctx, m)
	if err != nil {
		return callError(err, u)
	}
	if sub == "set" {
		if *def && (window.set || keepAll.set || thin.set) {
			return &cmdline.UsageError{Command: "policy", Err: errors.New("policy set: --default with --window, --keep-all or --thin"), Remedy: "give either --default or the durations"}
		}
		drill := drillEvery.set || drillVerify.set || drillTimeout.set
		if !*def && !window.set && !keepAll.set && !thin.set && !drill {
			return &cmdline.UsageError{Command: "policy", Err: errors.New("policy set: nothing to set"), Remedy: "give --window, --keep-all, --thin, --default or a --drill-… flag"}
		}
		if drill {
			// The drill part of the policy: the same record as 'lifeboat
			// drill set', flags not given keep their value.
			st, err := a.Drill(ctx, m)
			if err != nil {
				return callError(err, u)
			}
			dp := st.Policy
			if drillEvery.set {
				dp.IntervalSeconds = drillEvery.d.Seconds()
			}
			if drillVerify.set {
				dp.Verify = drillVerify.v
			}
			if drillTimeout.set {
				dp.TimeoutSeconds = drillTimeout.d.Seconds()
			}
			if _, err := a.SetDrill(ctx, m, dp); err != nil {
				return callError(err, u)
			}
		}
	}
	if sub == "set" && (*def || window.set || keepAll.set || thin.set) {
		// Flags not given keep their current value.
		np := api.Policy{WindowSeconds: p.WindowSeconds, KeepAllSeconds: p.KeepAllSeconds, ThinSeconds: p.ThinSeconds, Default: *def}
		for _, f := range []struct {
			d   durationFlag
			dst *int64
		}{{window, &np.WindowSeconds}, {keepAll, &np.KeepAllSeconds}, {thin, &np.ThinSeconds}} {
			if f.d.set {
				*f.dst = int64(f.d.d / time.Second)
			}
		}
		if p, err = a.SetPolicy(ctx, m, np); err != nil {
			return callError(err, u)
		}
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, p)
	}
	src := "set for this machine"
	if p.Default {
		src = "the default"
	}
	tw := table(c.main.Stdout)
	fmt.Fprintf(tw, "MACHINE\tWINDOW\tKEEP ALL\tTHIN\tPOLICY\n%s\t%s\t%s\t%s\t%s\n", m,
		fmtDur(p.WindowSeconds), fmtDur(p.KeepAllSeconds), fmtDur(p.ThinSeconds), src)
	if err := tw.Flush(); err != nil {
		return err
	}
	if st, err := a.Drill(ctx, m); err == nil {
		if dp := st.Policy; dp.IntervalSeconds > 0 {
			fmt.Fprintf(c.main.Stdout, "drills every %s", time.Duration(dp.IntervalSeconds*float64(time.Second)))
			if dp.Verify != "" {
				fmt.Fprintf(c.main.Stdout, ", verified by %s", dp.Verify)
			}
			fmt.Fprintln(c.main.Stdout, " ('lifeboat drill show "+m+"')")
		} else {
			fmt.Fprintln(c.main.Stdout, "drills off ('lifeboat policy set "+m+" --drill-interval 24h')")
		}
	}
	return nil
}

// stringFlag is a string flag that knows whether it was given.
type stringFlag struct {
	v   string
	set bool
}

func (f *stringFlag) String() string     { return f.v }
func (f *stringFlag) Set(v string) error { f.v, f.set = v, true; return nil }

// fmtDur formats whole seconds as a Go duration without zero units
// ("24h", "1h30m").
func fmtDur(sec int64) string {
	d := time.Duration(sec) * time.Second
	s := d.String()
	for _, z := range []string{"m0s", "h0m"} {
		if len(s) > len(z) && s[len(s)-len(z):] == z {
			s = s[:len(s)-len(z)+1]
		}
	}
	return s
}

// durationFlag is a duration flag that knows whether it was given.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return errors.New("negative duration")
	}
	if d%time.Second != 0 {
		return errors.New("durations are whole seconds")
	}
	f.d, f.set = d, true
	return nil
}
