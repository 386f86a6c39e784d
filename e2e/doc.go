// Package e2e holds the end-to-end tests: the real binaries (server,
// agent, agentctl, lifeboat) as separate processes on real loop devices,
// with real filesystems and fio, killed with SIGKILL and cut off the
// network to prove what the product promises. They need root, eBPF and
// loop devices; with CI=true they fail rather than skip without them.
package e2e
