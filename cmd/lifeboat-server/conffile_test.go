package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
)

// TestShippedConfigListsEveryFlag keeps packaging/server/server.toml, which
// documents every key with its default, in step with run's flags.
func TestShippedConfigListsEveryFlag(t *testing.T) {
	var usage bytes.Buffer
	m := &Main{Stdout: &usage, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	m.Run(context.Background(), []string{"run", "-h"})
	flags := regexp.MustCompile(`(?m)^\s+--([a-z][a-z-]*)`).FindAllStringSubmatch(usage.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in run's usage:\n%s", len(flags), usage.String())
	}
	conf, err := os.ReadFile("../../packaging/server/server.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flags {
		if f[1] == "config" {
			continue
		}
		if !regexp.MustCompile(`(?m)^#?` + regexp.QuoteMeta(f[1]) + ` = `).Match(conf) {
			t.Errorf("packaging/server/server.toml does not list the key %q (flag --%s)", f[1], f[1])
		}
	}
}
