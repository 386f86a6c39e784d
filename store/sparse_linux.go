package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// punchHole makes [off, off+n) of f read as zeros, deallocating it where
// the file system can punch holes and writing zeros elsewhere.
func punchHole(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		return writeZeros(f, off, n)
	}
	return fmt.Errorf("punch hole: %w", err)
}

// nextData returns the offset of the first byte at or after off that may
// hold data (not a hole), or end when none does before end. Where the file
// system cannot tell, it returns off.
func nextData(f *os.File, off, end int64) (int64, error) {
	d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return end, nil
	case err != nil:
		return off, nil
	}
	return min(d, end), nil
}

// copySparse makes dst, a new empty file, a copy of the first n bytes of
// src, of size n: it shares src's extents (FICLONE) where the file system
// can, else copies only src's data extents, so holes stay holes.
func copySparse(dst, src *os.File, n int64) error {
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err == nil {
		if err := dst.Truncate(n); err != nil {
			return fmt.Errorf("copy image: %w", err)
		}
		return nil
	}
	end := min(n, fi.Size())
	sfd := int(src.Fd())
	for off := int64(0); off < end; {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			// No SEEK_DATA here: copy everything, skipping zeros.
			if err := copyRangeBuffered(dst, src, off, end-off); err != nil {
				return err
			}
			break
		}
		if data >= end {
			break
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("copy image: seek hole: %w", err)
		}
		hole = min(hole, end)
		if err := copyRange(dst, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	if err := dst.Truncate(n); err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	return nil
}

// copyRange copies [off, off+n) of src to the same offsets of dst, in the
// kernel where it can.
func copyRange(dst, src *os.File, off, n int64) error {
	roff, woff := off, off
	for n > 0 {
		k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil || k == 0 {
			return copyRangeBuffered(dst, src, roff, n)
		}
		n -= int64(k)
	}
	return nil
}

// lockDir takes an exclusive lock (shared: a shared one) on the file lock
// in dir, held until the returned file is closed.
func lockDir(path string, shared bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if shared {
				return nil, fmt.Errorf("lock store: %s is held exclusively by another process or Local (open it shared from every process server)", path)
			}
			return nil, fmt.Errorf("lock store: %s is held by another process or Local", path)
		}
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return f, nil
}

// copyData copies the data of src in [lo, hi) to the same offsets of dst,
// skipping src's holes (dst must read as zeros there) and whatever lies
// beyond src's end.
func copyData(dst, src *os.File, lo, hi int64) error {
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	hi = min(hi, fi.Size())
	for off := lo; off < hi; {
		data, err := nextData(src, off, hi)
		if err != nil {
			return err
		}
		if data >= hi {
			return nil
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil || hole <= data {
			hole = hi // no SEEK_HOLE here: copy the rest
		}
		hole = min(hole, hi)
		if err := copyRange(dst, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyExtent copies n bytes of src at srcOff to dst at dstOff, in the
// kernel (copy_file_range: no copy through user space) where it can, else
// through buf.
func copyExtent(dst *os.File, dstOff int64, src *os.File, srcOff, n int64, buf *[]byte) error {
	for n > 0 {
		k, err := unix.CopyFileRange(int(src.Fd()), &srcOff, int(dst.Fd()), &dstOff, int(min(n, 1<<30)), 0)
		if err != nil || k == 0 {
			return copyExtentBuffered(dst, dstOff, src, srcOff, n, buf)
		}
		n -= int64(k)
	}
	return nil
}
