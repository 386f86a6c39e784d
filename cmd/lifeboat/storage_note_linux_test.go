package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestMachinesStorageNote checks that 'lifeboat servers' shows the
// server's note about target storage without reflink, with its remedy, on
// a data directory that cannot share extents, and no note on XFS made with
// reflink=1; 'lifeboat machines' never repeats it.
func TestMachinesStorageNote(t *testing.T) {
	for _, c := range []struct {
		name    string
		parent  func(t *testing.T) string
		reflink bool
	}{
		{"tmp", func(t *testing.T) string { return testenv.NewNoReflinkDir(t) }, false},
		{"xfs-reflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, true) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(c.parent(t), "data")
			if err := pki.Init(dir, pki.Options{}); err != nil {
				t.Fatal(err)
			}
			servertest.Start(t, servertest.Config(t, dir))
			out := mustRun(t, nil, "--data", dir, "servers")
			noted := strings.Contains(out, "NOTE server: ") && strings.Contains(out, "reflink=1")
			if noted == c.reflink || !strings.Contains(out, "SERVER") {
				t.Fatalf("servers on %s (reflink %v):\n%s", c.name, c.reflink, out)
			}
			if out := mustRun(t, nil, "--data", dir, "machines"); strings.Contains(out, "NOTE server: ") || !strings.Contains(out, "no machine yet") {
				t.Fatalf("machines repeats the storage note on %s:\n%s", c.name, out)
			}
		})
	}
}
