package main

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestMachinesStorageNote checks that 'lifeboat machines' shows the
// server's note about target storage without reflink, with its remedy, on
// a data directory that cannot share extents, and no note on XFS made with
// reflink=1.
func TestMachinesStorageNote(t *testing.T) {
	for _, c := range []struct {
		name    string
		parent  func(t *testing.T) string
		reflink bool
	}{
		{"tmp", func(t *testing.T) string {
			dir := t.TempDir()
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			if st.Type != unix.EXT4_SUPER_MAGIC && st.Type != unix.TMPFS_MAGIC {
				t.Skipf("TMPDIR is on a file system of type %#x, neither ext4 nor tmpfs", st.Type)
			}
			return dir
		}, false},
		{"xfs-reflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, true) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(c.parent(t), "data")
			if err := pki.Init(dir, pki.Options{}); err != nil {
				t.Fatal(err)
			}
			servertest.Start(t, servertest.Config(t, dir))
			out := mustRun(t, nil, "--data", dir, "machines")
			noted := strings.Contains(out, "NOTE server: ") && strings.Contains(out, "reflink=1")
			if noted == c.reflink || !strings.Contains(out, "no machine yet") {
				t.Fatalf("machines on %s (reflink %v):\n%s", c.name, c.reflink, out)
			}
		})
	}
}
