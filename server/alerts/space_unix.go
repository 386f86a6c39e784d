//go:build unix

package alerts

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Space returns the free (for unprivileged users, as df shows) and total
// bytes of the file system of the cache directory, or of the data
// directory when the cache directory cannot be read.
func Space(cacheDir, dataDir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cacheDir, &st); err != nil {
		if err := unix.Statfs(dataDir, &st); err != nil {
			return 0, 0, fmt.Errorf("free space of %s: %w", dataDir, err)
		}
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
