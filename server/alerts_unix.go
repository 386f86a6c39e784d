//go:build unix

package server

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// cacheSpace returns the free (for unprivileged users, as df shows) and
// total bytes of the file system of the data directory's cache.
func cacheSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	p := filepath.Join(dir, CacheDir)
	if err := unix.Statfs(p, &st); err != nil {
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, 0, fmt.Errorf("free space of %s: %w", dir, err)
		}
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
