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
