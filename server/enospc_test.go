//go:build linux

package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

// TestCacheDiskFull puts the data directory on a 512 KiB tmpfs: a segment
// that does not fit is answered 507, leaves nothing behind, and the next
// one that fits is accepted.
func TestCacheDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		if testenv.InCI() {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	l, err := store.OpenLocal(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := servertest.Config(t, dir)
	cfg.Store = l
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")

	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a'))
	big := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: 1, Gen: 2,
		Writes: []servertest.Write{{Off: 0, Data: randomBytes(800 << 10)}}}
	_, err = put(t, a, "sda", 1, big.Build(t, t.TempDir()))
	ae := wantStatus(t, err, http.StatusInsufficientStorage)
	t.Logf("507: %s; hint: %s", ae.Message, ae.Hint())
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil || st.NextSeq != 1 {
		t.Errorf("state after 507: %+v, %v", st, err)
	}
	files, _ := os.ReadDir(filepath.Join(dir, server.CacheDir, "web1", "sda"))
	if slices.ContainsFunc(files, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".tmp-") }) {
		t.Errorf("temporary file left after 507: %v", files)
	}
	mustPut(t, a, "sda", 1, seg(t, "web1", "sda", 1, 0, 'b'))
}
