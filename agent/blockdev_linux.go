package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

func openBlockDev(path string) (*blockDev, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	lbs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("block size of %s: %w", path, err)
	}
	return &blockDev{f: f, path: path, size: int64(size), align: max(int64(lbs), 4096)}, nil
}

// pread is unix.Pread; tests replace it to hold reads back or fail them.
var pread = unix.Pread

// readAt is one pread of the device.
func (b *blockDev) readAt(p []byte, off int64) (int, error) {
	return pread(int(b.f.Fd()), p, off)
}

// filesystemDisk returns the whole disk (major:minor) holding the
// filesystem of path.
func filesystemDisk(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fsutil.WholeDisk(unix.Major(st.Dev), unix.Minor(st.Dev))
}

// wholeDiskOf returns the whole disk (major:minor) of a block device path.
func wholeDiskOf(dev string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s: not a block device", dev)
	}
	return fsutil.WholeDisk(unix.Major(st.Rdev), unix.Minor(st.Rdev))
}
