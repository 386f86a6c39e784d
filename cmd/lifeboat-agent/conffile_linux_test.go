package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestShippedConfigListsEveryFlag keeps packaging/agent/agent.toml, which
// documents every key with its default, in step with run's flags.
func TestShippedConfigListsEveryFlag(t *testing.T) {
	var usage bytes.Buffer
	(&runCommand{out: &bytes.Buffer{}, errOut: &usage, getenv: func(string) string { return "" }}).parse([]string{"-h"})
	flags := regexp.MustCompile(`(?m)^\s+--([a-z][a-z-]*)`).FindAllStringSubmatch(usage.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in run's usage:\n%s", len(flags), usage.String())
	}
	conf, err := os.ReadFile("../../packaging/agent/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flags {
		if f[1] == "config" {
			continue
		}
		if !regexp.MustCompile(`(?m)^#?` + regexp.QuoteMeta(f[1]) + ` = `).Match(conf) {
			t.Errorf("packaging/agent/agent.toml does not list the key %q (flag --%s)", f[1], f[1])
		}
	}
}
