// Package fsutil owns the crash-safe file write every package of Lifeboat
// uses for its metadata: a temporary file beside the target, fsync,
// rename, fsync of the directory. It must never leave a half-written file
// under the target's name. On Linux it also owns the few helpers that
// find and freeze the mounted filesystems of a disk (FIFREEZE/FITHAW),
// which must always be thawed; and IsZero, the zero-block test of the
// agent's reads and the store's sparse copies.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// TempPrefix returns the prefix of the temporary files WriteFileAtomic
// makes for a file named name; a crash may leave such files behind, and
// their owner may remove them at start.
func TempPrefix(name string) string { return "." + name + ".tmp-" }

// WriteFileAtomic replaces path with data crash-safely: a temporary file in
// the same directory (TempPrefix), written with mode, fsynced, renamed over
// path, then the directory fsynced. After a crash, path holds either the
// old content or the new one.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(filepath.Base(path))+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so that the entries created, renamed or
// removed in it are durable. Windows has no such operation (and NTFS needs
// none).
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
