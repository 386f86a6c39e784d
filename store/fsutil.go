package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// Permissions of what the store creates: replicas hold customers' data.
const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// writeFileAtomic replaces dir/name with data crash-safely (see
// fsutil.WriteFileAtomic; its temporary files are fsutil.TempPrefix(name)).
func writeFileAtomic(dir, name string, data []byte) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data, filePerm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncDir fsyncs a directory (fsutil.SyncDir).
func syncDir(dir string) error { return fsutil.SyncDir(dir) }

// mkdirAllSync creates dir and its missing parents, and fsyncs the parent
// of each directory it creates.
func mkdirAllSync(dir string) error {
	var missing []string
	for p := filepath.Clean(dir); ; {
		_, err := os.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make directory: %w", err)
		}
		missing = append(missing, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make directory: %w", err)
		}
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// openGrow opens (creating it if needed) the image file at path for
// reading and writing and makes it at least size bytes long, sparsely. It
// reports whether it created the file, whose directory entry the caller
// must then make durable.
func openGrow(path string, size int64) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
		created = true
	}
	if err != nil {
		return nil, false, fmt.Errorf("open image: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < size {
		err = f.Truncate(size)
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("grow image %s: %w", filepath.Base(path), err)
	}
	return f, created, nil
}

// writeFull writes b at off; a short write without an error is an error.
func writeFull(f io.WriterAt, b []byte, off int64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// zeroBuf is a read-only buffer of zeros.
var zeroBuf = make([]byte, 1<<20)

// writeZeros writes n zero bytes at off.
func writeZeros(f io.WriterAt, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBuf)))
		if err := writeFull(f, zeroBuf[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// copyRangeBuffered copies [off, off+n) of src to the same offsets of dst
// through a buffer, leaving holes where src reads as zeros.
func copyRangeBuffered(dst, src *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := src.ReadAt(buf[:k], off); err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		if !fsutil.IsZero(buf[:k]) {
			if err := writeFull(dst, buf[:k], off); err != nil {
				return fmt.Errorf("write image: %w", err)
			}
		}
		off += k
		n -= k
	}
	return nil
}

// copyExtentBuffered copies n bytes of src at srcOff to dst at dstOff
// through *buf (grown to at most 1 MiB), zeros included.
func copyExtentBuffered(dst *os.File, dstOff int64, src *os.File, srcOff, n int64, buf *[]byte) error {
	if int64(cap(*buf)) < min(n, 1<<20) {
		*buf = make([]byte, min(n, 1<<20))
	}
	b := (*buf)[:cap(*buf)]
	for n > 0 {
		k := min(n, int64(len(b)))
		if _, err := src.ReadAt(b[:k], srcOff); err != nil {
			return fmt.Errorf("read segment: %w", err)
		}
		if err := writeFull(dst, b[:k], dstOff); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		srcOff, dstOff, n = srcOff+k, dstOff+k, n-k
	}
	return nil
}
