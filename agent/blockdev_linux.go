//go:build linux

package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// blockDev reads a protected disk with O_DIRECT, so what it reads is what
// reached the device, never a page cache that may be ahead of it.
type blockDev struct {
	f     *os.File
	path  string
	size  int64
	align int64 // offsets and lengths of reads are multiples of it
}

// maxRead is the largest read of the agent (copy_linux.go reads with it).
const maxRead = 1 << 20

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

// alignRange widens [off, off+n) to the read alignment, clipped to the
// device.
func (b *blockDev) alignRange(off, n int64) (int64, int64) {
	start := off / b.align * b.align
	end := min((off+n+b.align-1)/b.align*b.align, b.size)
	return start, max(0, end-start)
}

func (b *blockDev) close() error {
	return b.f.Close()
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
