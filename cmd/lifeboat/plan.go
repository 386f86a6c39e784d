package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// PlanCommand is 'lifeboat plan create|show|list|delete|test|run'.
type PlanCommand struct {
	main *Main
	conn Conn
}

const planUsage = `Usage:
  lifeboat plan create NAME --group M1,M2 [--group M3 ...] [--script-after-group N=PATH ...] [--script-timeout 10m]
  lifeboat plan show   NAME [--json]
  lifeboat plan list   [--json]
  lifeboat plan delete NAME
  lifeboat plan test   NAME --out DIR [--point latest|latest-app] [--check] [--json]
  lifeboat plan run    NAME --out DIR [--point latest|latest-app] [--check] [--json]
`

// Run runs a plan subcommand.
func (c *PlanCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.main.Stderr, planUsage)
		return cmdline.Usagef("plan", "plan: give a command")
	}
	sub := args[0]
	fs := flag.NewFlagSet("plan "+sub, flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), planUsage)
		cmdline.PrintDefaults(fs)
	}
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	var groups, scripts stringList
	var timeout durationFlag
	var out, point *string
	var check *bool
	wantArgs := 1
	switch sub {
	case "create":
		fs.Var(&groups, "group", "comma-separated `MACHINES` of the next group (repeat, in order)")
		fs.Var(&scripts, "script-after-group", "`N=PATH`: run PATH (on the server host) after group N (repeatable)")
		fs.Var(&timeout, "script-timeout", "`DURATION` after which a script is killed (default 10m)")
	case "test", "run":
		out = fs.String("out", "", "`DIR` on the server host: each machine's disks go to DIR/<machine>/<disk>.img")
		point = fs.String("point", api.PointLatest, "`POINT` of every machine: latest or latest-app")
		check = fs.Bool("check", false, "check the filesystems of every image read-only")
	case "show", "delete":
	case "list":
		wantArgs = 0
	default:
		fmt.Fprint(c.main.Stderr, planUsage)
		return cmdline.Usagef("plan", "plan: unknown command %q", sub)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != wantArgs {
		fs.Usage()
		if wantArgs == 0 {
			return cmdline.Usagef("plan", "plan %s: unexpected argument %q", sub, pos[0])
		}
		return cmdline.Usagef("plan", "plan %s: give one plan NAME", sub)
	}
	var req api.PlanRequest
	var plan api.Plan
	switch sub {
	case "create":
		if plan, err = parsePlan(pos[0], groups, scripts, timeout); err != nil {
			return err
		}
	case "test", "run":
		if *out == "" {
			return &cmdline.UsageError{Command: "plan", Err: fmt.Errorf("plan %s: --out is required", sub), Remedy: "give --out DIR: the server writes DIR/<machine>/<disk>.img on its host"}
		}
		dir, err := filepath.Abs(*out)
		if err != nil {
			return err
		}
		req = api.PlanRequest{Out: dir, Point: *point, Check: *check}
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	w := c.main.Stdout
	switch sub {
	case "create":
		p, err := a.CreatePlan(ctx, plan)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(w, p)
		}
		fmt.Fprintf(w, "plan %s created\n", p.Name)
		return printPlan(w, p)
	case "show":
		p, err := a.Plan(ctx, pos[0])
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(w, p)
		}
		return printPlan(w, p)
	case "delete":
		p, err := a.DeletePlan(ctx, pos[0])
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(w, p)
		}
		fmt.Fprintf(w, "plan %s deleted\n", p.Name)
		return nil
	case "list":
		ps, err := a.Plans(ctx)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(w, ps)
		}
		if len(ps) == 0 {
			fmt.Fprintln(w, "no plan yet: 'lifeboat plan create NAME --group M1,M2 ...'")
			return nil
		}
		tw := table(w)
		fmt.Fprintln(tw, "PLAN\tGROUPS\tMACHINES\tSCRIPTS\tCREATED")
		for _, p := range ps {
			var gs []string
			n := 0
			for _, g := range p.Groups {
				gs = append(gs, strings.Join(g, ","))
				n += len(g)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", p.Name, strings.Join(gs, " → "), n, len(p.Scripts), fmtTime(&p.Created))
		}
		return tw.Flush()
	}
	// test, run
	var res api.PlanResult
	if sub == "test" {
		res, err = a.TestPlan(ctx, pos[0], req)
	} else {
		res, err = a.RunPlan(ctx, pos[0], req)
	}
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		err = writeJSON(w, res)
	} else {
		err = printPlanResult(w, res)
	}
	if err != nil {
		return err
	}
	if st := res.Stopped; st != nil {
		where := "failover of " + st.Machine
		if st.Script != "" {
			where = "script " + st.Script
		}
		remedy := "groups after it were not failed over; the images written so far are kept under " + res.Out
		if st.Hint != "" {
			remedy = st.Hint + "; " + remedy
		}
		return &Error{Err: fmt.Errorf("plan %s stopped at group %d: %s: %s", res.Plan, st.Group, where, st.Error), Remedy: remedy}
	}
	return nil
}

// parsePlan builds a plan from the flags of 'plan create'.
func parsePlan(name string, groups, scripts stringList, timeout durationFlag) (api.Plan, error) {
	p := api.Plan{Name: name, Scripts: []api.PlanScript{}}
	if len(groups) == 0 {
		return p, &cmdline.UsageError{Command: "plan", Err: errors.New("plan create: no --group"), Remedy: "give --group M1,M2 for each group, in the order they fail over"}
	}
	for _, g := range groups {
		var ms []string
		for _, m := range strings.Split(g, ",") {
			if m = strings.TrimSpace(m); m != "" {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			return p, &Error{Err: fmt.Errorf("plan create: empty --group %q", g), Remedy: "each --group names machines, comma-separated"}
		}
		p.Groups = append(p.Groups, ms)
	}
	for _, s := range scripts {
		n, path, ok := strings.Cut(s, "=")
		g, err := strconv.Atoi(n)
		if !ok || err != nil || path == "" {
			return p, &Error{Err: fmt.Errorf("plan create: bad --script-after-group %q", s), Remedy: "give N=PATH: a group number and an absolute path on the server host"}
		}
		p.Scripts = append(p.Scripts, api.PlanScript{AfterGroup: g, Path: path})
	}
	if timeout.set {
		if timeout.d < time.Second {
			return p, &Error{Err: errors.New("plan create: --script-timeout under one second"), Remedy: "give a duration such as 10m"}
		}
		p.ScriptTimeoutSeconds = int64(timeout.d / time.Second)
	}
	return p, nil
}

// printPlan prints a plan's groups and scripts in order.
func printPlan(w io.Writer, p api.Plan) error {
	tw := table(w)
	fmt.Fprintln(tw, "STEP\tGROUP\tWHAT")
	step := 1
	for i, g := range p.Groups {
		fmt.Fprintf(tw, "%d\t%d\tfail over %s\n", step, i+1, strings.Join(g, ", "))
		step++
		for _, s := range p.Scripts {
			if s.AfterGroup == i+1 {
				fmt.Fprintf(tw, "%d\t%d\trun %s (timeout %s)\n", step, i+1, s.Path, fmtDur(p.ScriptTimeoutSeconds))
				step++
			}
		}
	}
	return tw.Flush()
}

// printPlanResult prints what a plan's test or run did.
func printPlanResult(w io.Writer, res api.PlanResult) error {
	kind := "run"
	if res.Test {
		kind = "test"
	}
	status := "ok"
	if !res.OK {
		status = "STOPPED"
	}
	fmt.Fprintf(w, "plan %s %s: %s in %.1f s (point %s, out %s)\n", res.Plan, kind, status, res.Finished.Sub(res.Started).Seconds(), res.Point, res.Out)
	tw := table(w)
	fmt.Fprintln(tw, "GROUP\tSTEP\tPOINT\tIMAGES\tDURATION\tRESULT")
	for _, g := range res.Groups {
		for _, m := range g.Machines {
			pt, imgs := "-", "-"
			if m.Failover != nil {
				pt = m.Failover.Point.ID + " (" + m.Failover.Point.Kind + ")"
				var ps []string
				for _, im := range m.Failover.Images {
					ps = append(ps, im.Path)
				}
				imgs = strings.Join(ps, ",")
			}
			result := "ok"
			if !m.OK {
				result = "FAILED: " + m.Error + hintNote(m.Hint)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.1f s\t%s\n", g.Group, "failover "+m.Machine, pt, imgs, m.DurationSeconds, result)
		}
		for _, s := range g.Scripts {
			result := "exit 0"
			if s.Error != "" {
				result = "FAILED: " + s.Error + hintNote(s.Hint)
			}
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t%.1f s\t%s\n", g.Group, "script "+s.Path, s.DurationSeconds, result)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range res.Groups {
		for _, m := range g.Machines {
			if m.Failover != nil && len(m.Failover.Checks) > 0 {
				fmt.Fprintf(w, "\nfilesystems of %s:\n", m.Machine)
				if err := printChecks(w, m.Failover.Checks); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// hintNote shows a result's hint after its error in the table.
func hintNote(hint string) string {
	if hint == "" {
		return ""
	}
	return " (hint: " + hint + ")"
}
