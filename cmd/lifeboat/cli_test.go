package main

import (
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
)

// TestMain makes the test binary lifeboat when a test runs it again.
func TestMain(m *testing.M) { cmdlinetest.Main(m, main) }

// TestCommandLine runs lifeboat for real: usage errors exit 2 with their
// message, help is --flag style on stdout with exit 0, suggestions,
// completion, man pages (internal/cmdline).
func TestCommandLine(t *testing.T) {
	cmdlinetest.Check(t, cmdlinetest.Spec{
		Name: "lifeboat", Command: "machines", Flag: "json",
		UsageErrors: []cmdlinetest.Case{
			{Args: []string{"machines", "--bogus"}, Want: []string{"lifeboat: unknown flag: --bogus", "'lifeboat machines --help'"}},
			{Args: []string{"--bogus", "machines"}, Want: []string{"unknown flag: --bogus"}},
			{Args: []string{"points"}, Want: []string{"points: give one MACHINE"}},
			{Args: []string{"group", "point", "g", "--wait", "soon"}, Want: []string{`invalid value "soon" for --wait`}},
			{Args: nil, Want: []string{"no command given"}},
		},
	})
	// A command that only groups others lists them.
	for _, args := range [][]string{{"group", "--help"}, {"help", "plan"}} {
		r := cmdlinetest.Run(t, args...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Commands:") || !strings.Contains(r.Stdout, "  create ") {
			t.Errorf("lifeboat %v: exit status %d:\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	// The single-dash long flags of scripts still work, with a notice:
	// the value of -data reached the command.
	r := cmdlinetest.Run(t, "-data", "/nonexistent-lifeboat-dir", "machines", "-json")
	if r.Code != 1 || !strings.Contains(r.Stderr, "no server.json in /nonexistent-lifeboat-dir") ||
		!strings.Contains(r.Stderr, "-data is deprecated, write --data") || !strings.Contains(r.Stderr, "-json is deprecated, write --json") {
		t.Errorf("lifeboat -data DIR machines -json: exit status %d:\n%s", r.Code, r.Stderr)
	}
}
