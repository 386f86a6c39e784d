package main

import (
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
)

// TestMain makes the test binary agentctl when a test runs it again.
func TestMain(m *testing.M) { cmdlinetest.Main(m, main) }

// TestCommandLine runs agentctl for real: usage errors exit 2 with their
// message, help is --flag style on stdout with exit 0, suggestions,
// completion, man pages (internal/cmdline).
func TestCommandLine(t *testing.T) {
	cmdlinetest.Check(t, cmdlinetest.Spec{
		Name: "agentctl", Command: "status", Flag: "state",
		UsageErrors: []cmdlinetest.Case{
			{Args: []string{"status", "--bogus"}, Want: []string{"agentctl: unknown flag: --bogus", "'agentctl status --help'"}},
			{Args: []string{"status", "extra"}, Want: []string{`status: unexpected argument "extra"`}},
			{Args: []string{"assess", "--duration", "1"}, Want: []string{"--duration"}},
			{Args: []string{"bookmark", "--bogus"}, Want: []string{"unknown flag: --bogus"}},
		},
	})
	dir := t.TempDir()
	r := cmdlinetest.Run(t, "status", "-state", dir, "-json")
	if r.Code != exitNoAgent || !strings.Contains(r.Stderr, dir) || !strings.Contains(r.Stderr, "-state is deprecated, write --state") {
		t.Errorf("agentctl status -state DIR -json: exit status %d, want %d:\n%s", r.Code, exitNoAgent, r.Stderr)
	}
}
