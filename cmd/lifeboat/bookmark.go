package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// BookmarkCommand is 'lifeboat bookmark MACHINE': the server asks the
// machine's agent for a point now (the console's Bookmark button).
type BookmarkCommand struct {
	main *Main
	conn Conn
}

// Run asks for the point and prints its id once the server lists it.
func (c *BookmarkCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bookmark", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/console.md)")
	app := fs.Bool("app-consistent", false, "an app-consistent point (the agent's scripts and a freeze)")
	wait := fs.Duration("wait", 0, "how long the server waits for the agent (0: its default, 2m)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat bookmark MACHINE [--app-consistent] [--wait 2m] [--json]\n\nAsk the machine's agent, through the server, for a point now; prints its id once listed.")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("bookmark", "bookmark: give one MACHINE")
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	w := ""
	if *wait > 0 {
		w = wait.String()
	}
	r, err := a.Bookmark(ctx, pos[0], api.BookmarkRequest{App: *app}, w)
	if err != nil {
		return callError(err, u)
	}
	out := c.main.Stdout
	if *asJSON {
		if err := writeJSON(out, r); err != nil {
			return err
		}
	} else if r.OK && r.Point != nil {
		fmt.Fprintf(out, "%s\t%s\t%s\n", r.Point.ID, r.Point.Kind, r.Point.Time.UTC().Format(time.RFC3339))
	}
	if !r.OK {
		return &Error{Err: fmt.Errorf("bookmark of %s failed: %s", r.Machine, r.Error), Remedy: r.Hint}
	}
	if !r.Listed {
		return &Error{Err: fmt.Errorf("bookmark of %s: point %s taken but not listed yet", r.Machine, r.Point.ID), Remedy: r.Hint}
	}
	return nil
}
