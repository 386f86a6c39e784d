package main

import (
	"context"
	"flag"
	"io"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// commands is lifeboat's command tree, for help, suggestions, shell
// completion and man pages (internal/cmdline); dispatch runs them.
var commands = []cmdline.Command{
	{Path: "machines", Args: "[--json]", Short: "list the machines, their disks, points and problems"},
	{Path: "machines reregister", Args: "NAME [--json]", Short: "let a machine register again (a new identity)"},
	{Path: "machines revoke", Args: "NAME [--json]", Short: "revoke a machine's certificate"},
	{Path: "machines discard", Args: "NAME DISK SEQ [--json]", Short: "drop a segment whose apply keeps failing; the disk is resynced"},
	{Path: "bookmark", Args: "MACHINE [--app-consistent] [--wait 2m] [--json]", Short: "ask the machine's agent, through the server, for a point now"},
	{Path: "test-failovers", Args: "[--machine M] [--json]", Short: "list the images test failovers left"},
	{Path: "test-failovers cleanup", Args: "ID...|--machine M", Short: "remove the images of test failovers"},
	{Path: "servers", Args: "[--json]", Short: "list the process servers"},
	{Path: "move", Args: "MACHINE --to SERVER [--force] [--json]", Short: "move a machine to another process server"},
	{Path: "points", Args: "MACHINE|--group NAME [--json]", Short: "list the recovery points of a machine or group"},
	{Path: "failover", Args: "MACHINE|--group NAME --point ID|latest|latest-app [--test] [--boot] --out DIR|--to-blob CONTAINER [--check] [--json]", Short: "materialize (and boot) the disks at a point: test failover or failover"},
	{Path: "vms", Args: "[--json]", Short: "list the VMs of boot-verified test failovers"},
	{Path: "vms stop", Args: "ID", Short: "stop a test failover's VM"},
	{Path: "drill", Short: "scheduled boot-verified drills"},
	{Path: "drill list", Short: "list the drill schedules"},
	{Path: "drill show", Args: "MACHINE", Short: "show a machine's drill schedule and last result"},
	{Path: "drill set", Args: "MACHINE --interval 24h [--verify SCRIPT] [--ready REGEX] [--timeout 10m]", Short: "schedule a machine's drill"},
	{Path: "drill run", Args: "MACHINE", Short: "run a machine's drill now"},
	{Path: "commit", Args: "MACHINE [--json]", Short: "commit a failover"},
	{Path: "failback", Args: "MACHINE [--to DEV|DISK=DEV] [--from PATH|DISK=PATH] [--complete|--cancel] [--json]", Short: "replicate a failed-over machine back to its disks"},
	{Path: "policy", Short: "retention policies", Group: true},
	{Path: "policy show", Args: "MACHINE [--json]", Short: "show a machine's retention policy"},
	{Path: "policy set", Args: "MACHINE [--window 24h] [--keep-all 2h] [--thin 1h] [--default]", Short: "set a machine's retention policy"},
	{Path: "prune", Args: "MACHINE [--json]", Short: "prune a machine's points now"},
	{Path: "plan", Short: "recovery plans", Group: true},
	{Path: "plan create", Args: "NAME --group M1,M2 [--group M3...] [--script-after-group N=PATH...]", Short: "create a recovery plan"},
	{Path: "plan list", Short: "list the recovery plans"},
	{Path: "plan show", Args: "NAME", Short: "show a recovery plan"},
	{Path: "plan delete", Args: "NAME", Short: "delete a recovery plan"},
	{Path: "plan test", Args: "NAME --out DIR [--point latest|latest-app] [--check] [--json]", Short: "test-fail over a recovery plan"},
	{Path: "plan run", Args: "NAME --out DIR [--point latest|latest-app] [--check] [--json]", Short: "fail over a recovery plan"},
	{Path: "group", Short: "replication groups (group points)", Group: true},
	{Path: "group create", Args: "NAME --machines A,B [--interval 5m]", Short: "create a replication group"},
	{Path: "group list", Short: "list the replication groups"},
	{Path: "group show", Args: "NAME", Short: "show a replication group"},
	{Path: "group delete", Args: "NAME", Short: "delete a replication group"},
	{Path: "group point", Args: "NAME [--wait 2m]", Short: "cut a group point now"},
	{Path: "push-install", Args: "--host H --key SSHKEY --disk DEV... [--user U] [--name MACHINE] [--json]", Short: "install and register an agent over SSH"},
	{Path: "users", Short: "web console accounts"},
	{Path: "users list", Short: "list the web console's accounts"},
	{Path: "users add", Args: "NAME --role viewer|operator [--password-file F]", Short: "add a web console account"},
	{Path: "users remove", Args: "NAME", Short: "remove a web console account"},
	{Path: "audit", Args: "[--limit N] [--json]", Short: "print the audit log"},
}

// program is lifeboat's command line.
func (m *Main) program() *cmdline.Program {
	return &cmdline.Program{
		Name:    "lifeboat",
		Args:    "[CONNECTION] COMMAND",
		Short:   "Lifeboat's admin command",
		Long:    "lifeboat talks to the admin API of a Lifeboat configuration server (lifeboat-server) to list machines and recovery points, fail over, commit, fail back, run recovery plans and drills, and set retention. The connection flags may come before or after the command; their defaults come from LIFEBOAT_DATA, LIFEBOAT_SERVER, LIFEBOAT_CA, LIFEBOAT_CERT and LIFEBOAT_KEY. Exit status: 0 done, 1 failed, 2 usage error.",
		Usage:   usage,
		Section: "1",
		RootFlags: func(fs *flag.FlagSet) {
			var conn Conn
			conn.register(fs, func(string) string { return "" })
		},
		Commands: commands,
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			m2 := *m
			m2.Stdout, m2.Stderr = stdout, stderr
			return m2.dispatch(ctx, args)
		},
	}
}
