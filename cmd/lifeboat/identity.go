package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// identity runs 'lifeboat machines reregister NAME' and 'lifeboat machines
// revoke NAME' (docs/security.md).
func (c *MachinesCommand) identity(ctx context.Context, verb string, args []string) error {
	fs := flag.NewFlagSet("machines "+verb, flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lifeboat machines %s NAME [--json]\n", verb)
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return cmdline.Usagef("machines", "machines %s: give one machine name", verb)
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	name := pos[0]
	switch verb {
	case "reregister":
		ans, err := a.Reregister(ctx, name)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, ans)
		}
		fmt.Fprintf(c.main.Stdout, "machine %s may register again once, until %s: start its agent with --passphrase-file (its old certificate is refused from then on)\n",
			ans.Machine, ans.Until.Local().Format(time.DateTime))
	case "revoke":
		ans, err := a.Revoke(ctx, name)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, ans)
		}
		fmt.Fprintf(c.main.Stdout, "machine %s revoked: its certificates are refused on both ports from the next connection on (serials %v)\n"+
			"to protect it again: 'lifeboat machines reregister %s', then register its agent again with a new key (move STATE/identity away)\n",
			ans.Machine, ans.Serials, ans.Machine)
	}
	return nil
}
