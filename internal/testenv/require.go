//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run in CI, that is whether the environment
// variable CI holds a true value ("true", "1", ...). In CI a missing
// requirement fails the test instead of skipping it.
func InCI() bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv("CI")))
	return err == nil && v
}

// unmet skips the test outside CI and fails it in CI, with a one-line reason.
func unmet(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("testenv: requirement not met, and CI=true so this test must run: %s", reason)
	}
	t.Skipf("testenv: skipped: %s (set CI=true to make this a failure)", reason)
}

// RequireRoot skips (outside CI) or fails (CI=true) the test unless it runs
// with effective uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		unmet(t, "needs root (euid is %d)", uid)
	}
}

// RequireBPF skips (outside CI) or fails (CI=true) the test unless it runs as
// root, the kernel exposes BTF at /sys/kernel/btf/vmlinux and a bpffs is
// mounted at /sys/fs/bpf.
func RequireBPF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		unmet(t, "needs kernel BTF: %v", err)
	}
	if err := checkBPFFS(bpffsRoot); err != nil {
		unmet(t, "needs bpffs: %v", err)
	}
}

// RequireCommand skips (outside CI) or fails (CI=true) the test unless every
// named program is found in $PATH.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		unmet(t, "needs command(s) not in $PATH: %s", strings.Join(missing, ", "))
	}
}

// requirePath skips or fails the test unless path exists.
func requirePath(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		unmet(t, "needs %s: %v", what, err)
	}
}

const bpffsRoot = "/sys/fs/bpf"

func checkBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if uint32(st.Type) != uint32(unix.BPF_FS_MAGIC) {
		return fmt.Errorf("%s is not a bpffs mount (filesystem magic %#x; mount -t bpf bpf %s)", dir, st.Type, dir)
	}
	return nil
}
