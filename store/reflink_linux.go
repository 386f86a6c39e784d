package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ProbeReflink reports whether the file system of dir can share extents
// between files (FICLONE, "reflink"): it makes two small temporary files
// in dir, clones one into the other and removes both. False with a nil
// error means the file system answered that it cannot (ext4, tmpfs; XFS
// made without reflink=1); an error means the probe itself failed (dir
// missing or not writable).
//
// Where it can, Materialize makes an image from a clone of the replica
// and rewrites only what changed since the point, so failover costs time
// in proportion to the changes; where it cannot, every image starts with
// a full copy of the base's data.
func ProbeReflink(dir string) (bool, error) {
	src, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("reflink probe: %w", err)
	}
	defer os.Remove(src.Name())
	defer src.Close()
	// One whole block of data: a clone of an empty file proves nothing.
	if err := writeFull(src, make([]byte, 64<<10), 0); err != nil {
		return false, fmt.Errorf("reflink probe: %w", err)
	}
	dst, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("reflink probe: %w", err)
	}
	defer os.Remove(dst.Name())
	defer dst.Close()
	err = cloneFile(dst, src)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errNoReflink):
		return false, nil
	}
	return false, fmt.Errorf("reflink probe: %w", err)
}

// errNoReflink is wrapped by cloneFile's error when the file system
// cannot share extents between the two files.
var errNoReflink = errors.New("the file system cannot share extents (no reflink)")

// cloneFile makes dst, an open empty file, share all of src's extents
// (FICLONE). An error that wraps errNoReflink says the file system
// cannot; dst is then unchanged.
func cloneFile(dst, src *os.File) error {
	err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EXDEV),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("clone %s: %w (%v)", src.Name(), errNoReflink, err)
	}
	return fmt.Errorf("clone %s: %w", src.Name(), err)
}
