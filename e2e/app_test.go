//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestAppConsistentPoints takes app-consistent points of ext4 and xfs while
// fio writes: the scripts run pre then post with the point's id, the freeze
// time is recorded, and the image is clean: ext4 with no journal to replay;
// xfs as clean as a frozen xfs is (its log replays at mount on this kernel,
// exactly as for a copy of the device taken while frozen).
func TestAppConsistentPoints(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			requireE2E(t)
			testenv.RequireCommand(t, "mkfs.xfs", "xfs_repair", "dumpe2fs")
			loop := testenv.NewLoop(t, 512*mib)
			if fs == "ext4" {
				run(t, "mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", loop.Path)
			} else {
				run(t, "mkfs.xfs", "-q", "-f", loop.Path)
			}
			mnt := mount(t, loop.Path)
			rcu, _ := os.ReadFile("/sys/kernel/rcu_expedited")
			rcuWasOff := strings.TrimSpace(string(rcu)) == "0"

			scripts := t.TempDir()
			log := filepath.Join(t.TempDir(), "scripts.log")
			script := "#!/bin/sh\necho \"$1 $LIFEBOAT_POINT_ID $(date +%s%N)\" >> " + log + "\n"
			if err := os.WriteFile(filepath.Join(scripts, "10-record"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			srv := startServer(t)
			ag := startAgent(t, srv, "app-"+fs, []string{loop.Path}, "--scripts", scripts, "--app-interval", "-1s")
			ag.bookmark()

			// A busy application, not a saturating one: writes that keep
			// landing on the blocks flushed by the freeze before they are
			// read spoil the point (the freeze is never held for the read).
			// --thread: fio's jobs are threads, so killing fio stops them
			// (forked jobs put themselves in process groups of their own).
			fio := exec.Command("fio", "--name=load", "--thread", "--directory="+mnt, "--size=64M", "--rw=randwrite", "--bs=4k",
				"--ioengine=psync", "--fsync=16", "--rate=4m", "--time_based", "--runtime=60")
			if err := fio.Start(); err != nil {
				t.Fatal(err)
			}
			stopFio := func() { fio.Process.Kill(); fio.Wait() }
			t.Cleanup(stopFio)
			time.Sleep(2 * time.Second)

			out, err := ag.ctl("bookmark", "--app-consistent", "--wait")
			if err != nil {
				st, _ := ag.ctl("status")
				t.Fatalf("app-consistent bookmark: %v\n%s", err, st)
			}
			id := strings.TrimSpace(out)
			stopFio()

			// The scripts: pre then post, with this point's id.
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-2], "pre "+id) || !strings.HasPrefix(lines[len(lines)-1], "post "+id) {
				t.Fatalf("scripts log %q; want pre then post of point %s", lines, id)
			}
			// The freeze time is recorded, and short.
			var st struct {
				LastApp *struct {
					ID            string  `json:"id"`
					Kind          string  `json:"kind"`
					FreezeSeconds float64 `json:"freeze_seconds"`
				} `json:"last_app_point"`
			}
			sj, _ := ag.ctl("status", "--json")
			if err := json.Unmarshal([]byte(sj), &st); err != nil || st.LastApp == nil {
				t.Fatalf("status: %v %s", err, sj)
			}
			if st.LastApp.ID != id || st.LastApp.Kind != "app" || st.LastApp.FreezeSeconds <= 0 || st.LastApp.FreezeSeconds > 1 {
				t.Errorf("last app point %+v; want %s, kind app, a freeze time above 0 and under 1 s", st.LastApp, id)
			}
			t.Logf("freeze held %.2f ms", st.LastApp.FreezeSeconds*1000)
			found := false
			var note struct {
				FreezeIoctlMS *float64 `json:"freeze_ioctl_ms"`
				ExpeditedRCU  bool     `json:"expedited_rcu"`
			}
			for _, p := range srv.points("app-" + fs) {
				if p.ID == id {
					found = p.Kind == "app"
					if err := json.Unmarshal([]byte(p.Note), &note); err != nil {
						t.Errorf("note of point %s: %v: %q", id, err, p.Note)
					}
				}
			}
			if !found {
				t.Fatalf("point %s not listed as app", id)
			}
			// Where the freeze went is recorded; RCU grace periods were
			// expedited for it (they were off before) and are off again.
			if note.FreezeIoctlMS == nil {
				t.Errorf("note of point %s lacks freeze_ioctl_ms", id)
			}
			if rcuWasOff && !note.ExpeditedRCU {
				t.Errorf("note of point %s: RCU grace periods not expedited during the freeze", id)
			}
			if b, err := os.ReadFile("/sys/kernel/rcu_expedited"); err != nil || strings.TrimSpace(string(b)) != "0" && rcuWasOff {
				t.Errorf("/sys/kernel/rcu_expedited after the point: %q, %v; want 0 again", b, err)
			}

			img := srv.failover("app-"+fs, id, filepath.Base(loop.Path))
			if fs == "ext4" {
				hdr := run(t, "dumpe2fs", "-h", img)
				if strings.Contains(hdr, "needs_recovery") {
					t.Errorf("ext4 image of an app-consistent point needs journal recovery:\n%s", hdr)
				}
				if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
					t.Errorf("e2fsck: %v\n%s", err, out)
				}
			} else {
				// A frozen xfs keeps a log to replay on this kernel (a copy of
				// the device taken while frozen does too), so: it must mount,
				// replaying it, and be clean once unmounted.
				imgLoop := testenv.NewLoop(t, 0, testenv.WithBacking(img))
				imgMnt := t.TempDir()
				run(t, "mount", "-o", "nouuid", imgLoop.Path, imgMnt)
				run(t, "umount", imgMnt)
				if out, err := exec.Command("xfs_repair", "-n", imgLoop.Path).CombinedOutput(); err != nil {
					t.Errorf("xfs_repair -n of the app-consistent point after its log replay: %v\n%s", err, out)
				}
			}
		})
	}
}
