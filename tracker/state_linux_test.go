//go:build linux

package tracker_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

func TestTrackGapDetection(t *testing.T) {
	loop := testenv.NewLoop(t, 16*mib)
	for _, tc := range []struct {
		name, bootID, reason string
	}{
		{"reboot", "00000000-0000-0000-0000-000000000000", "machine rebooted"},
		{"pins lost", "", "tracker state lost while the machine was running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.RequireBPF(t)
			bootID := tc.bootID
			if bootID == "" {
				b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
				if err != nil {
					t.Fatal(err)
				}
				bootID = string(b[:36])
			}
			state := filepath.Join(t.TempDir(), "tracker.json")
			b, _ := json.Marshal(map[string]any{"boot_id": bootID, "disks": []string{loop.Path}})
			if err := os.WriteFile(state, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tr := openTracker(t, tracker.Options{PinDir: testenv.BPFFSDir(t), StateFile: state})
			if err := tr.Protect(loop.Path); err != nil {
				t.Fatal(err)
			}
			err := tr.Gap(loop.Path)
			var rr *tracker.ResyncRequiredError
			if !errors.As(err, &rr) || !errors.Is(err, tracker.ErrResyncRequired) || rr.Reason != tc.reason {
				t.Fatalf("Gap = %v; want a resync error with reason %q", err, tc.reason)
			}
		})
	}
}

// TestTrackLostChangeNeedsResync grows a disk in bitmap mode past the
// bitmap sized when it was protected: the write cannot be recorded, is
// counted as lost, and Gap asks for a resync.
func TestTrackLostChangeNeedsResync(t *testing.T) {
	tr := openTracker(t, tracker.Options{})
	loop := testenv.NewLoop(t, 16*mib)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetMode(loop.Path, tracker.ModeBitmap); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(loop.Backing, 64*mib); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", loop.Path).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	w := newWriter(t, loop.Path)
	w.writeDirect(40*mib, 4096)
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Disks[0].Lost == 0 {
		t.Fatalf("write beyond the bitmap not counted as lost: %+v", st.Disks[0])
	}
	err = tr.Gap(loop.Path)
	if !errors.Is(err, tracker.ErrResyncRequired) {
		t.Fatalf("Gap = %v; want resync required", err)
	}
}

func TestBootIDAsTheKernelSpellsIt(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tracker.BootID()
	if err != nil || got != strings.TrimSpace(string(b)) {
		t.Fatalf("BootID() = %q, %v; want %q", got, err, strings.TrimSpace(string(b)))
	}
}
