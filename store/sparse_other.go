//go:build !linux

package store

import (
	"fmt"
	"os"
)

// punchHole makes [off, off+n) of f read as zeros by writing zeros.
func punchHole(f *os.File, off, n int64) error {
	return writeZeros(f, off, n)
}

// nextData cannot find holes here: it returns off.
func nextData(f *os.File, off, end int64) (int64, error) {
	return off, nil
}

// copySparse makes dst, a new empty file, a copy of the first n bytes of
// src, of size n, leaving holes where src reads as zeros.
func copySparse(dst, src *os.File, n int64) error {
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	if err := copyRangeBuffered(dst, src, 0, min(n, fi.Size())); err != nil {
		return err
	}
	if err := dst.Truncate(n); err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	return nil
}

// lockDir only creates the lock file: this platform has no flock.
func lockDir(path string, shared bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	return f, nil
}

// copyData copies [lo, hi) of src to the same offsets of dst, leaving
// zeros unwritten and stopping at src's end.
func copyData(dst, src *os.File, lo, hi int64) error {
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	hi = min(hi, fi.Size())
	if lo >= hi {
		return nil
	}
	return copyRangeBuffered(dst, src, lo, hi-lo)
}

// copyExtent copies n bytes of src at srcOff to dst at dstOff through buf.
func copyExtent(dst *os.File, dstOff int64, src *os.File, srcOff, n int64, buf *[]byte) error {
	return copyExtentBuffered(dst, dstOff, src, srcOff, n, buf)
}
