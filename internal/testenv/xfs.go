//go:build linux

package testenv

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NewXFS makes an XFS file system of size bytes on a new loop device
// (NewLoop), with reflink=1 when reflink is true and reflink=0 otherwise,
// mounts it on a new directory and returns that directory. A cleanup
// unmounts it (before the loop device is detached), also when the test
// fails. It skips or fails the test (see RequireRoot) without root or
// mkfs.xfs (xfsprogs).
func NewXFS(t testing.TB, size int64, reflink bool) string {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "mkfs.xfs")
	loop := NewLoop(t, size)
	flag := "reflink=0"
	if reflink {
		flag = "reflink=1"
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", "-m", flag, loop.Path).CombinedOutput(); err != nil {
		t.Fatalf("testenv: NewXFS: mkfs.xfs -m %s %s: %v: %s", flag, loop.Path, err, out)
	}
	dir := t.TempDir()
	if err := unix.Mount(loop.Path, dir, "xfs", 0, ""); err != nil {
		t.Fatalf("testenv: NewXFS: mount %s on %s: %v", loop.Path, dir, err)
	}
	t.Cleanup(func() {
		// A file a failed test left open keeps the mount busy a moment.
		var err error
		for i := 0; i < 50; i++ {
			if err = unix.Unmount(dir, 0); err == nil || err == unix.EINVAL {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("testenv: NewXFS: unmount %s: %v", dir, err)
			return
		}
		t.Logf("testenv: NewXFS: %s was busy for %s: detached lazily", dir, strconv.Quote(err.Error()))
	})
	return dir
}

// NewNoReflinkDir returns a new directory on a file system that cannot share
// extents: the test's temporary directory when it is ext4 or tmpfs, and
// else a tmpfs mounted for the test (unmounted by a cleanup, which needs
// root: see RequireRoot). Tests of the reflink probe and of the remedy
// shown without reflink use it next to NewXFS.
func NewNoReflinkDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("testenv: NewNoReflinkDir: statfs %s: %v", dir, err)
	}
	if st.Type == unix.EXT4_SUPER_MAGIC || st.Type == unix.TMPFS_MAGIC {
		return dir
	}
	RequireRoot(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512m"); err != nil {
		t.Fatalf("testenv: NewNoReflinkDir: TMPDIR is on a file system of type %#x; mount tmpfs on %s: %v", st.Type, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("testenv: NewNoReflinkDir: unmount %s: %v", dir, err)
		}
	})
	return dir
}
