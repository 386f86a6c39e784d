package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

// A bad setting is refused before anything happens: no state directory
// made, no registration tried (the server address would refuse it with
// a connection error instead).
func TestRunValidatesBeforeSideEffects(t *testing.T) {
	dir := t.TempDir()
	notBlock := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(notBlock, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(pass, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"not a block device", []string{"--disk", notBlock}, notBlock},
		{"bad log level", []string{"--disk", notBlock, "--log-level", "loud"}, "--log-level"},
		{"point interval below 1s", []string{"--disk", "/dev/null", "--point-interval", "10ms"}, "at least 1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"--server", "127.0.0.1:1", "--passphrase-file", pass, "--state", state, "--name", "m1"}, c.args...)
			err := (&runCommand{out: &out, errOut: &out, getenv: func(string) string { return "" }}).Run(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error naming %q, got %v", c.want, err)
			}
			if strings.Contains(err.Error(), "register") || strings.Contains(err.Error(), "connect") {
				t.Fatalf("registration was tried before validation: %v", err)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Fatalf("state directory created before validation (%v)", err)
			}
			if api.Hint(err) == "" && c.name != "bad log level" {
				t.Errorf("no hint with %v", err)
			}
		})
	}
}

// The bandwidth settings come from flags, the environment and the file
// like every other one, and a bad one is refused with the form to give.
func TestRunBandwidthSettings(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte("bandwidth-limit = \"20MiB\"\nbandwidth-schedule = [\"Mon-Fri 08:00-18:00=10MiB\", \"Sat-Sun 00:00-24:00=unlimited\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--server", "s:1", "--state", dir, "--name", "m1", "--disk", "/dev/null"}
	parse := func(env map[string]string, args ...string) (*runOptions, error) {
		var out bytes.Buffer
		return (&runCommand{out: &out, errOut: &out, quiet: true, getenv: func(k string) string { return env[k] }}).parse(append(append([]string{}, base...), args...))
	}
	o, err := parse(nil, "--config", conf)
	if err != nil {
		t.Fatal(err)
	}
	if o.bandwidthLimit != 20<<20 || len(o.bandwidthSchedule) != 2 {
		t.Errorf("from the file: limit %d, schedule %q", o.bandwidthLimit, o.bandwidthSchedule)
	}
	o, err = parse(map[string]string{"LIFEBOAT_AGENT_BANDWIDTH_LIMIT": "5MiB/s", "LIFEBOAT_AGENT_BANDWIDTH_SCHEDULE": "08:00-12:00=1MiB, 12:00-13:00=unlimited"})
	if err != nil {
		t.Fatal(err)
	}
	if o.bandwidthLimit != 5<<20 || len(o.bandwidthSchedule) != 2 {
		t.Errorf("from the environment: limit %d, schedule %q", o.bandwidthLimit, o.bandwidthSchedule)
	}
	if _, err := parse(nil, "--bandwidth-limit", "20"); err == nil || !strings.Contains(err.Error(), "at least 64KiB") {
		t.Errorf("a bare 20: %v", err)
	}
	if _, err := parse(nil, "--bandwidth-schedule", "9-17=1MiB"); err == nil || !strings.Contains(err.Error(), "HH:MM-HH:MM=RATE") {
		t.Errorf("a bad window: %v", err)
	}
	o, err = parse(nil, "--bandwidth-schedule", "08:00-18:00=1MiB", "--bandwidth-schedule", "17:00-19:00=2MiB")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(o); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping windows: %v", err)
	}
}
