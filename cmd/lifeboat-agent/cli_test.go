package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
)

// TestMain makes the test binary lifeboat-agent when a test runs it again.
func TestMain(m *testing.M) { cmdlinetest.Main(m, main) }

// TestCommandLine runs lifeboat-agent for real: usage errors exit 2 with
// their message, help is --flag style on stdout with exit 0, suggestions,
// completion, man pages (internal/cmdline).
func TestCommandLine(t *testing.T) {
	cmdlinetest.Check(t, cmdlinetest.Spec{
		Name: "lifeboat-agent", Command: "run", Flag: "disk",
		UsageErrors: []cmdlinetest.Case{
			{Args: []string{"run", "--bogus"}, Want: []string{"lifeboat-agent: unknown flag: --bogus", "'lifeboat-agent run --help'"}},
			{Args: []string{"run", "--point-interval", "30"}, Want: []string{`invalid value "30" for --point-interval`, "has no unit"}},
			{Args: []string{"run", "--server", "h:1"}, Want: []string{"run: missing --disk, --state"}},
			{Args: []string{"install", "--init", "auto", "extra"}, Want: []string{`install: unexpected argument "extra"`}},
		},
	})
	missing := filepath.Join(t.TempDir(), "agent.toml")
	r := cmdlinetest.Run(t, "check-config", "-config", missing)
	if r.Code == 0 || r.Code == 2 || !strings.Contains(r.Stderr, missing) || !strings.Contains(r.Stderr, "-config is deprecated, write --config") {
		t.Errorf("lifeboat-agent check-config -config FILE: exit status %d:\n%s", r.Code, r.Stderr)
	}
}
