//go:build linux

package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

// TestCacheFullShowsPerMachine: uploads refused with 507 (a full cache)
// show in the machine's problems and as an upload-refused alert with the
// reason, until an upload is accepted again (issue 18, item 7).
func TestCacheFullShowsPerMachine(t *testing.T) {
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
	cfg.AlertCacheFree = -1 // the cache-space alert is not the one tested
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	adm := servertest.Admin(t, srv, dir)

	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a'))
	big := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: 1, Gen: 2,
		Writes: []servertest.Write{{Off: 0, Data: randomBytes(800 << 10)}}}
	path := big.Build(t, t.TempDir())
	for range 3 {
		_, err = put(t, a, "sda", 1, path)
		wantStatus(t, err, http.StatusInsufficientStorage)
	}
	ms, err := adm.Machines(ctx(t))
	if err != nil || len(ms) != 1 {
		t.Fatalf("machines: %v %v", ms, err)
	}
	if p := strings.Join(ms[0].Problems, "\n"); !strings.Contains(p, "disk sda: upload of segment 1 refused (507") || !strings.Contains(p, "cache disk full") {
		t.Errorf("lifeboat machines does not show the full cache: %q", p)
	}
	as, err := adm.Alerts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var found *api.Alert
	for i, al := range as.Active {
		if al.Alert == api.AlertUploadRefused && al.Machine == "web1" && al.Disk == "sda" {
			found = &as.Active[i]
		}
	}
	if found == nil {
		t.Fatalf("no upload-refused alert: %+v", as.Active)
	}
	t.Logf("alert: %s; remedy: %s", found.Message, found.Remedy)
	if !strings.Contains(found.Message, "3 refusals") || found.Remedy == "" {
		t.Errorf("alert without the count or remedy: %+v", *found)
	}
	mustPut(t, a, "sda", 1, seg(t, "web1", "sda", 1, 0, 'b'))
	if ms, _ := adm.Machines(ctx(t)); len(ms) == 1 && strings.Contains(strings.Join(ms[0].Problems, "\n"), "refused") {
		t.Errorf("refusal still shown after an accepted upload: %v", ms[0].Problems)
	}
}
