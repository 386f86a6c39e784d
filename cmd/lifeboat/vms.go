package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// VMsCommand is 'lifeboat vms': the VMs kept by 'failover --boot --keep'.
type VMsCommand struct {
	main *Main
	conn Conn
}

// Run lists the kept VMs, or stops one.
func (c *VMsCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vms", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat vms [--json]        list the VMs kept by 'lifeboat failover --boot --keep'")
		fmt.Fprintln(fs.Output(), "       lifeboat vms stop ID          stop one and remove its temporary files")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	switch {
	case len(pos) == 0:
	case pos[0] == "stop" && len(pos) == 2:
		if err := a.StopVM(ctx, pos[1]); err != nil {
			return callError(err, u)
		}
		fmt.Fprintf(c.main.Stdout, "VM %s stopped\n", pos[1])
		return nil
	default:
		fs.Usage()
		return cmdline.Usagef("vms", "vms: give no argument, or stop ID")
	}
	vs, err := a.VMs(ctx)
	if err != nil {
		return callError(err, u)
	}
	if *asJSON {
		return writeJSON(c.main.Stdout, vs)
	}
	if len(vs) == 0 {
		fmt.Fprintln(c.main.Stdout, "no kept VM")
		return nil
	}
	tw := table(c.main.Stdout)
	fmt.Fprintln(tw, "ID\tMACHINE\tPOINT\tSTARTED\tPID\tPORT\tCONSOLE")
	for _, v := range vs {
		port := "-"
		if v.HostPort != 0 {
			port = fmt.Sprintf("127.0.0.1:%d", v.HostPort)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\tsocat -,raw,echo=0 UNIX-CONNECT:%s\n", v.ID, v.Machine, v.Point, fmtTime(&v.Started), v.Pid, port, v.ConsoleSocket)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.main.Stdout, "\nthe console sockets and ports are on the server host; 'lifeboat vms stop ID' ends a VM")
	return nil
}
