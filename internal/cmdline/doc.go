// Package cmdline owns the command lines of the four programs (lifeboat,
// lifeboat-server, lifeboat-agent, agentctl): GNU-style flags parsed by
// spf13/pflag over the Go flag sets each command declares (so that
// internal/config still layers the file and the environment under them),
// the old single-dash long flags accepted with a deprecation notice, one
// exit code (2) for every usage error, and a spf13/cobra tree per program
// for help, suggestions of mistyped commands, shell completion and man
// pages. It must never hold a command's own logic: a program hands it the
// function that runs its commands.
package cmdline
