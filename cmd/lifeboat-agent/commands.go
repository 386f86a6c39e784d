package main

import (
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// program is lifeboat-agent's command line (internal/cmdline): its command
// tree for help, suggestions, shell completion and man pages; runWith runs
// them.
func program() *cmdline.Program {
	return &cmdline.Program{
		Name:    "lifeboat-agent",
		Args:    "COMMAND",
		Short:   "Lifeboat mobility agent",
		Long:    "lifeboat-agent tracks every changed block of the protected disks with an eBPF program on the kernel's block layer, journals the changes and streams them over mutual TLS to a Lifeboat process server, cutting crash-consistent and app-consistent recovery points. Its flags may be given as keys of a TOML file (--config, default /etc/lifeboat/agent.toml for the service) or as LIFEBOAT_AGENT_<FLAG> variables; see /usr/share/doc/lifeboat-agent/agent.md.",
		Usage:   usage,
		Section: "8",
		Commands: []cmdline.Command{
			{Path: "run", Args: "[--config FILE] --server HOST:PORT --passphrase-file F --disk DEV [--disk DEV...] --state DIR [--name MACHINE]", Short: "replicate the disks to the process server"},
			{Path: "track", Args: "--disk DEV [--disk DEV...] [--json]", Short: "print changed extents live"},
			{Path: "install", Args: "[--config FILE] [--init auto|systemd|sysv] [--print]", Short: "install the system service (running 'run --config FILE')"},
			{Path: "uninstall", Args: "[--init auto|systemd|sysv]", Short: "remove the system service"},
			{Path: "start", Short: "start the system service"},
			{Path: "stop", Short: "stop the system service"},
			{Path: "restart", Short: "restart the system service"},
			{Path: "status", Short: "say whether the system service runs"},
			{Path: "check-config", Args: "[--config FILE]", Short: "say whether the service can start with FILE"},
			{Path: "release-tracker", Args: "[--config FILE]", Short: "end tracking left pinned by a stopped agent (package removal)"},
		},
		Run: runWith,
	}
}
