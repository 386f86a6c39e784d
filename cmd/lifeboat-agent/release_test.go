package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// An incomplete configuration (no server, no disk) still names its pins:
// package removal must release them, not guess the default directory.
func TestReleaseTrackerReadsPinDirOfIncompleteConfig(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(dir, "pins")
	if err := os.MkdirAll(filepath.Join(pins, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte("state = \"/nowhere\"\npin-dir = \""+pins+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := releaseTrackerCommand([]string{"--config", conf}, &out, &out); err != nil {
		t.Fatalf("release-tracker: %v", err)
	}
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Fatalf("pins still there (%v); output: %s", err, out.String())
	}
	if p, _ := pinsOf(conf, func(k string) string {
		if k == "LIFEBOAT_AGENT_PIN_DIR" {
			return "/from/env"
		}
		return ""
	}); p != "/from/env" {
		t.Fatalf("environment does not win over the file: %q", p)
	}
}
