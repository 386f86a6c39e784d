package main

import (
	"context"
	"io"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// program is lifeboat-server's command line (internal/cmdline): its
// command tree for help, suggestions, shell completion and man pages;
// dispatch runs them.
func (m *Main) program() *cmdline.Program {
	return &cmdline.Program{
		Name:    "lifeboat-server",
		Args:    "COMMAND",
		Short:   "Lifeboat configuration, process and master-target server",
		Long:    "lifeboat-server runs Lifeboat's server roles in one process: the configuration server (registration, CA, recovery-point catalog, HTTPS admin API, web console), the process server (receives the agents' journals over mutual TLS and applies them to target storage) and the master target (failback). Its flags may be given as keys of a TOML file (--config, default /etc/lifeboat/server.toml for the service) or as LIFEBOAT_SERVER_<FLAG> variables; see /usr/share/doc/lifeboat-server/server.md.",
		Usage:   usage,
		Section: "8",
		Commands: []cmdline.Command{
			{Path: "init", Args: "--data DIR [--san NAME...]", Short: "create the CA, certificates and passphrase"},
			{Path: "run", Args: "[--config FILE] --data DIR [--api ADDR] [--listen ADDR] [--roles config,process,mastertarget]", Short: "serve the roles"},
			{Path: "admin-cert", Short: "the admin certificate", Group: true},
			{Path: "admin-cert renew", Args: "--data DIR", Short: "renew the admin certificate, revoking the old one"},
			{Path: "admin-cert show", Args: "--data DIR", Short: "show the admin certificate"},
			{Path: "install", Args: "[--config FILE] [--init auto|systemd|sysv] [--print]", Short: "install the system service (running 'run --config FILE')"},
			{Path: "uninstall", Args: "[--init auto|systemd|sysv]", Short: "remove the system service"},
			{Path: "start", Short: "start the system service"},
			{Path: "stop", Short: "stop the system service"},
			{Path: "restart", Short: "restart the system service"},
			{Path: "status", Short: "say whether the system service runs"},
			{Path: "check-config", Args: "[--config FILE]", Short: "say whether the service can start with FILE"},
		},
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			m2 := *m
			m2.Stdout, m2.Stderr = stdout, stderr
			return m2.dispatch(ctx, args)
		},
	}
}
