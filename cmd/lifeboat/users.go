package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// UsersCommand is 'lifeboat users': the web console's accounts.
type UsersCommand struct {
	main *Main
	conn Conn
}

const usersUsage = `Usage: lifeboat users list [--json]
       lifeboat users add NAME --role viewer|operator [--password-file F|-] [--json]
       lifeboat users remove NAME

An operator may act in the web console (failover, commit); a viewer only sees.
Without --password-file the server chooses a password, printed once here.`

// Run lists, adds or removes accounts.
func (c *UsersCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	c.conn.register(fs, c.main.Getenv)
	asJSON := fs.Bool("json", false, "print JSON (stable, see docs/console.md)")
	role := fs.String("role", "", "with add: `ROLE` viewer or operator")
	passFile := fs.String("password-file", "", "with add: `FILE` whose first line is the password (- reads standard input)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usersUsage)
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return cmdline.Usagef("users", "users: give list, add NAME or remove NAME")
	}
	verb, pos := pos[0], pos[1:]
	want := 1
	if verb == "list" {
		want = 0
	}
	if len(pos) != want {
		fs.Usage()
		return fmt.Errorf("users %s: wrong number of arguments", verb)
	}
	var req api.UserRequest
	if verb == "add" {
		if *role == "" {
			return &cmdline.UsageError{Command: "users", Err: errors.New("users add: no --role"), Remedy: "give --role viewer (sees) or --role operator (sees and acts)"}
		}
		req = api.UserRequest{Name: pos[0], Role: *role}
		if *passFile != "" {
			if req.Password, err = readPassword(*passFile, os.Stdin); err != nil {
				return err
			}
		}
	} else if verb != "list" && verb != "remove" {
		fs.Usage()
		return fmt.Errorf("users: unknown %q", verb)
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	switch verb {
	case "list":
		us, err := a.Users(ctx)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, us)
		}
		if len(us) == 0 {
			fmt.Fprintln(c.main.Stdout, "no console account: add one with 'lifeboat users add NAME --role operator'")
			return nil
		}
		tw := table(c.main.Stdout)
		fmt.Fprintln(tw, "ACCOUNT\tROLE\tCREATED")
		for _, x := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Name, x.Role, x.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "add":
		res, err := a.AddUser(ctx, req)
		if err != nil {
			return callError(err, u)
		}
		if *asJSON {
			return writeJSON(c.main.Stdout, res)
		}
		fmt.Fprintf(c.main.Stdout, "account %s added (%s)\n", res.User.Name, res.User.Role)
		if res.Password != "" {
			fmt.Fprintf(c.main.Stdout, "password (shown once, give it to its owner): %s\n", res.Password)
		}
		return nil
	default:
		if err := a.RemoveUser(ctx, pos[0]); err != nil {
			return callError(err, u)
		}
		fmt.Fprintf(c.main.Stdout, "account %s removed; its console sessions ended\n", pos[0])
		return nil
	}
}

func readPassword(file string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("users add: %w", err)
		}
		defer f.Close()
		r = f
	}
	if r == nil {
		return "", errors.New("users add: no standard input")
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("users add: read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
