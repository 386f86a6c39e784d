//go:build linux

package testenv

import (
	"errors"
	"os"
	"testing"
)

// BPFFSDir returns a fresh, unique directory under /sys/fs/bpf
// (/sys/fs/bpf/lifeboat-test-NNNN) for the test to pin programs, links and
// maps in. A cleanup removes it recursively with all pins, also when the test
// fails or panics. Removing a pin drops its reference: a pinned link detaches
// once no process holds it open any more. It skips or fails the test (see
// RequireRoot) without root or without a bpffs at /sys/fs/bpf.
func BPFFSDir(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	if err := checkBPFFS(bpffsRoot); err != nil {
		unmet(t, "needs bpffs: %v", err)
	}
	// bpffs refuses names with dots, so no test name in here.
	dir, err := os.MkdirTemp(bpffsRoot, "lifeboat-test-")
	if err != nil {
		t.Fatalf("testenv: BPFFSDir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: cleanup of %s: %v", dir, err)
			return
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("testenv: cleanup of %s: still there after RemoveAll (%v)", dir, err)
		}
	})
	return dir
}
