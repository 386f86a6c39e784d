package main

import (
	"strings"
	"testing"
)

// TestFailoverToBlobRefused: --to-blob against a server whose target
// storage is a directory, or with flags it does not go with, is refused
// with a remedy before anything is written.
func TestFailoverToBlobRefused(t *testing.T) {
	dir := replicate(t)
	env := map[string]string{"LIFEBOAT_DATA": dir}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"directory store", []string{"failover", "web1", "--point", "latest", "--test", "--to-blob", "failover"}, []string{"400", "not in Azure Blob Storage", "hint:", "--store azblob://"}},
		{"with --out", []string{"failover", "web1", "--point", "latest", "--to-blob", "failover", "--out", t.TempDir()}, []string{"--to-blob goes with one MACHINE", "hint:"}},
		{"with --group", []string{"failover", "--group", "g", "--point", "latest", "--to-blob", "failover"}, []string{"--to-blob goes with one MACHINE", "hint:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, err := run(t, env, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}
