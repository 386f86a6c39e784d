package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// A disk name the server would refuse, or a bad --pin-dir, stops the agent
// before it registers: the server knows no machine afterwards and the
// state directory holds no identity. A dotted host name as --name passes
// (issue 18, items 5 and 10).
func TestPrecheckBeforeRegistering(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	pass := filepath.Join(t.TempDir(), "pass")
	p, err := pki.ReadPassphrase(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pass, []byte(p+"\n"), 0o600)
	devs := t.TempDir()
	for _, c := range []struct{ name, disk, pinDir, want string }{
		{"web1.example.com", filepath.Join(devs, "café"), "", "character 'é' not allowed"},
		{"web1.example.com", filepath.Join(devs, strings.Repeat("d", 74)), "", "longer than 63"},
		{"web1", filepath.Join(devs, "sda"), "/sys/fs/bpf/lifeboat-web1.x", "bpffs refuses a '.'"},
		{"bad name", filepath.Join(devs, "sda"), "", "character ' ' not allowed"},
	} {
		state := filepath.Join(t.TempDir(), "state")
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := []string{"--server", s.APIAddr(), "--passphrase-file", pass, "--state", state, "--name", c.name, "--disk", c.disk}
		if c.pinDir != "" {
			args = append(args, "--pin-dir", c.pinDir)
		}
		err := (&runCommand{out: &out, errOut: &errOut, getenv: func(string) string { return "" }}).Run(ctx, args)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.name, c.disk, err, c.want)
		}
		if ents, _ := os.ReadDir(filepath.Join(state, "identity")); len(ents) > 0 {
			t.Errorf("%s: identity written before the checks: %d files", c.disk, len(ents))
		}
	}
	ms, err := servertest.Admin(t, s, dir).Machines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 0 {
		t.Errorf("machines registered by failed starts: %+v", ms)
	}
	if err := precheck(&runOptions{name: "web1.example.com", disks: []string{"/dev/sda"}}); err != nil {
		t.Errorf("a dotted host name as --name: %v", err)
	}
}
