// Command agentctl diagnoses the local mobility agent and acts on it:
// `status` and `bookmark`. It talks to the agent's unix socket in its
// state directory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent"
)

// DefaultState is the agent's state directory when --state is not given.
const DefaultState = "/var/lib/lifeboat/agent"

const usage = `agentctl: diagnose the local Lifeboat agent

Usage:
  agentctl status   [--state DIR] [--json]                       exit code 1 when unhealthy
  agentctl bookmark [--state DIR] [--app-consistent] [--wait]    prints the point id
  agentctl bookmark [--state DIR] --group [--wait]                a group point (on the group's coordinator)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentctl:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2, nil
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", DefaultState, "the agent's state directory")
	switch args[0] {
	case "status":
		asJSON := fs.Bool("json", false, "print JSON (documented in docs/agent.md)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2, nil
		}
		var st agent.Status
		if err := call(ctx, *state, http.MethodGet, "/v1/status", &st); err != nil {
			return 1, err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(st)
		} else {
			printStatus(stdout, st)
		}
		if !st.Healthy {
			return 1, nil
		}
		return 0, nil
	case "bookmark":
		app := fs.Bool("app-consistent", false, "freeze the filesystems for the cut (app-consistent point)")
		wait := fs.Bool("wait", false, "return once the point is durable on the server and listed")
		group := fs.Bool("group", false, "a group point across the machine's replication group (only on the group's coordinator); --wait waits for this machine's part")
		if err := fs.Parse(args[1:]); err != nil {
			return 2, nil
		}
		q := "?"
		if *app {
			q += "app=1&"
		}
		if *group {
			q += "group=1&"
		}
		if *wait {
			q += "wait=1"
		}
		var p agent.Point
		if err := call(ctx, *state, http.MethodPost, "/v1/bookmark"+q, &p); err != nil {
			return 1, err
		}
		fmt.Fprintln(stdout, p.ID)
		return 0, nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0, nil
	}
	fmt.Fprint(stderr, usage)
	return 2, fmt.Errorf("unknown command %q", args[0])
}

func call(ctx context.Context, state, method, path string, out any) error {
	sock := filepath.Join(state, agent.SocketName)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("no agent answers on %s: is lifeboat-agent running with --state %s?", sock, state)
		}
		return fmt.Errorf("ask the agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error, Hint string
		}
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Hint != "" {
			return fmt.Errorf("%s (%s)", e.Error, e.Hint)
		}
		return errors.New(e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func printStatus(w io.Writer, st agent.Status) {
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(w, "machine %s: %s (up %s, tracker generation %d, %d writes in flight)\n", st.Machine, health, st.Uptime, st.Tracker.Generation, st.Tracker.InFlight)
	if st.LastPoint != nil {
		fmt.Fprintf(w, "last point: %s %s (%s ago)\n", st.LastPoint.ID, st.LastPoint.Kind, time.Since(st.LastPoint.Time).Round(time.Second))
	} else {
		fmt.Fprintln(w, "last point: none yet")
	}
	for _, d := range st.Disks {
		line := fmt.Sprintf("  %-10s %-13s", d.Name, d.State)
		if d.State != agent.StateProtected {
			line += fmt.Sprintf(" %5.1f%%", 100*d.Progress)
		}
		line += fmt.Sprintf("  pending %s  spool %s (%d segments)  tracker %s: %d events, %d drops, %d lost",
			bytesString(d.PendingBytes), bytesString(d.Spool.Bytes), d.Spool.Queued, d.Tracker.Mode, d.Tracker.Events, d.Tracker.Drops, d.Tracker.Lost)
		fmt.Fprintln(w, line)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem: %s\n  remedy: %s\n", p.What, p.Remedy)
	}
}

func bytesString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", f), "0"), ".") + " " + units[i]
}
