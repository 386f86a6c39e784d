package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
)

// TestMain makes the test binary lifeboat-server when a test runs it
// again (here, and to run the server as a process and kill it).
func TestMain(m *testing.M) { cmdlinetest.Main(m, main) }

// TestCommandLine runs lifeboat-server for real:
// usage errors exit 2 with their message, help is --flag style on stdout
// with exit 0, suggestions, completion, man pages (internal/cmdline).
func TestCommandLine(t *testing.T) {
	cmdlinetest.Check(t, cmdlinetest.Spec{
		Name: "lifeboat-server", Command: "run", Flag: "data",
		UsageErrors: []cmdlinetest.Case{
			{Args: []string{"run", "--bogus"}, Want: []string{"lifeboat-server: unknown flag: --bogus", "'lifeboat-server run --help'"}},
			{Args: []string{"init", "extra"}, Want: []string{"unexpected argument"}},
			{Args: []string{"admin-cert", "show", "--data"}, Want: []string{"flag needs an argument: --data"}},
			{Args: []string{"admin-cert"}, Want: []string{"admin-cert: say renew or show"}},
			{Args: []string{"init", "--data", ""}, Want: []string{"init: --data DIR is required"}},
		},
	})
	dir := filepath.Join(t.TempDir(), "none")
	r := cmdlinetest.Run(t, "admin-cert", "show", "-data", dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, dir) || !strings.Contains(r.Stderr, "-data is deprecated, write --data") {
		t.Errorf("lifeboat-server admin-cert show -data DIR: exit status %d:\n%s", r.Code, r.Stderr)
	}
}
