package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agentctl finds the agent's state directory as the agent does: flag,
// environment, the agent's configuration file, the default.
func TestStateFromAgentConfigAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(conf, []byte("server = \"x:443\"\nstate = \"/srv/lifeboat-state\"\ndisk = [\"/dev/sdb\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	old := getenv
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = old })

	resolve := func(args ...string) string {
		t.Helper()
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		stateOf := stateFlag(fs, "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		s, err := stateOf()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := resolve("--config", conf); got != "/srv/lifeboat-state" {
		t.Errorf("--config: state %q", got)
	}
	env["LIFEBOAT_AGENT_CONFIG"] = conf
	if got := resolve(); got != "/srv/lifeboat-state" {
		t.Errorf("LIFEBOAT_AGENT_CONFIG: state %q", got)
	}
	env["LIFEBOAT_AGENT_STATE"] = "/from/env"
	if got := resolve(); got != "/from/env" {
		t.Errorf("LIFEBOAT_AGENT_STATE: state %q", got)
	}
	if got := resolve("--state", "/from/flag"); got != "/from/flag" {
		t.Errorf("--state: state %q", got)
	}

	// status with no flag asks the agent of that state directory.
	delete(env, "LIFEBOAT_AGENT_STATE")
	var out, errOut bytes.Buffer
	code, _ := run(context.Background(), []string{"status"}, &out, &errOut)
	if code != exitNoAgent || !strings.Contains(errOut.String(), "/srv/lifeboat-state") {
		t.Fatalf("status: code %d, stderr %q: did not use the configured state directory", code, errOut.String())
	}
}
