package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// ServersCommand is 'lifeboat servers'.
type ServersCommand struct {
	main *Main
	conn Conn
}

// Run lists the process servers.
func (c *ServersCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("servers", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat servers [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cmdline.Usagef("servers", "servers: unexpected argument %q", pos[0])
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	ss, err := a.Servers(ctx)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, ss)
	}
	if len(ss) == 0 {
		fmt.Fprintln(c.main.Stdout, "no process server: run the configuration server with the process role, or join one with 'lifeboat-server init --join'")
		printServerNote(ctx, c.main.Stdout, a)
		return nil
	}
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tROLES\tMACHINES\tHEALTH\tLAST HEARTBEAT")
	for _, s := range ss {
		id := s.ID
		if s.Local {
			id += " (local)"
		}
		health, beat := "healthy", fmtTime(s.LastHeartbeat)
		if !s.Healthy {
			health = "UNHEALTHY"
		}
		if s.Local {
			beat = "-"
		}
		addr := s.Address
		if addr == "" {
			addr = "-"
		}
		roles := strings.Join(s.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		machines := fmt.Sprintf("%d", len(s.Machines))
		if len(s.Machines) > 0 {
			machines += " (" + strings.Join(s.Machines, ",") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, addr, roles, machines, health, beat)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range ss {
		for _, p := range s.Problems {
			fmt.Fprintf(c.main.Stdout, "\nPROBLEM %s: %s\n", s.ID, p)
		}
	}
	printServerNote(ctx, c.main.Stdout, a)
	return nil
}

// printServerNote prints the server's deployment note (target storage
// without reflink), if any; a server without GET /v1/server has none to
// give. It is shown here, where the deployment is looked at (and by
// lifeboat-server init and run), not under every listing of machines.
func printServerNote(ctx context.Context, w io.Writer, a *client.Admin) {
	if si, err := a.Server(ctx); err == nil && si.StoreNote != "" {
		fmt.Fprintf(w, "\nNOTE server: %s\n", si.StoreNote)
	}
}
