//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestCLITestFailoverCleanup: the server remembers the images of every
// test failover; cleanup removes exactly those (never another file, never
// the images of a real failover into the same place), and the directory
// only when it is left empty.
func TestCLITestFailoverCleanup(t *testing.T) {
	s := newSite(t)
	s.simple("web1", 'a', servertest.Cut("p0"))
	list := func() []api.TestFailover {
		t.Helper()
		var tfs []api.TestFailover
		if err := json.Unmarshal([]byte(mustRun(t, s.env, "test-failovers", "--json")), &tfs); err != nil {
			t.Fatal(err)
		}
		return tfs
	}
	base := t.TempDir()
	d1, d2, d3 := filepath.Join(base, "t1"), filepath.Join(base, "t2"), filepath.Join(base, "t3")
	for _, d := range []string{d2, d1} {
		mustRun(t, s.env, "failover", "web1", "--point", "p0", "--test", "--out", d)
	}
	tfs := list()
	if len(tfs) != 2 || tfs[0].Out != d2 || tfs[1].Out != d1 || tfs[1].Images[0].Path != filepath.Join(d1, "sda.img") {
		t.Fatalf("test failovers: %+v", tfs)
	}
	if out := mustRun(t, s.env, "test-failovers"); !strings.Contains(out, tfs[0].ID) || !strings.Contains(out, d2) {
		t.Fatalf("test-failovers:\n%s", out)
	}
	out := mustRun(t, s.env, "test-failovers", "cleanup", tfs[1].ID)
	if !strings.Contains(out, "1 image(s) removed") {
		t.Fatalf("cleanup:\n%s", out)
	}
	if _, err := os.Stat(d1); !os.IsNotExist(err) {
		t.Fatalf("the emptied output directory is left: %v", err)
	}
	// Another file in the directory stays, and so does the directory.
	other := filepath.Join(d2, "notes.txt")
	os.WriteFile(other, []byte("mine"), 0o644)
	mustRun(t, s.env, "test-failovers", "cleanup", "--machine", "web1")
	if _, err := os.Stat(filepath.Join(d2, "sda.img")); !os.IsNotExist(err) {
		t.Fatalf("image left: %v", err)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "mine" {
		t.Fatalf("another file in the output directory was touched: %v", err)
	}
	if tfs := list(); len(tfs) != 0 {
		t.Fatalf("after cleanup: %+v", tfs)
	}
	_, errOut, err := run(t, s.env, "test-failovers", "cleanup", tfs[0].ID)
	if err == nil || !strings.Contains(errOut, "no test failover") || !strings.Contains(errOut, "lifeboat test-failovers") {
		t.Fatalf("second cleanup: %v\n%s", err, errOut)
	}
	// A real failover into a test's directory (its images removed by
	// hand: a failover never overwrites one) makes the images its own.
	mustRun(t, s.env, "failover", "web1", "--point", "p0", "--test", "--out", d3)
	if err := os.Remove(filepath.Join(d3, "sda.img")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, s.env, "failover", "web1", "--point", "p0", "--out", d3)
	if tfs := list(); len(tfs) != 0 {
		t.Fatalf("a real failover's images are listed as a test's: %+v", tfs)
	}
	if _, err := os.Stat(filepath.Join(d3, "sda.img")); err != nil {
		t.Fatal(err)
	}
}
