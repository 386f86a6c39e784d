// Package cli holds the conventions the four commands (lifeboat-agent,
// agentctl, lifeboat-server, lifeboat) share with their operator: how an
// error and its remedy are printed. It must never hold a command's own
// logic.
package cli
