//go:build linux

// Package recoverytest makes disk images for tests: filesystems made with
// the real mkfs tools on sparse files, placed at offsets of an image whose
// partition table sfdisk writes. It needs no root: nothing is attached to a
// loop device. Tests that use it skip (outside CI) or fail (CI=true) when a
// tool is missing.
package recoverytest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// XFSMinSize is the smallest filesystem mkfs.xfs makes.
const XFSMinSize = 300 * MiB

// MakeFS makes a filesystem of type typ ("ext4", "ext3", "ext2", "xfs",
// "swap") in a new sparse file of size bytes and returns its path. An ext
// filesystem is populated with a few files.
func MakeFS(t testing.TB, typ string, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), typ+".fs")
	if err := sparseFile(path, size); err != nil {
		t.Fatal(err)
	}
	var argv []string
	switch typ {
	case "ext2", "ext3", "ext4":
		src := t.TempDir()
		for i := range 5 {
			os.WriteFile(filepath.Join(src, fmt.Sprintf("file%d", i)), []byte(strings.Repeat("lifeboat ", 1000*(i+1))), 0o644)
		}
		os.Mkdir(filepath.Join(src, "dir"), 0o755)
		argv = []string{"mkfs." + typ, "-q", "-F", "-b", "4096", "-d", src, path}
	case "xfs":
		argv = []string{"mkfs.xfs", "-q", "-f", path}
	case "swap":
		argv = []string{"mkswap", path}
	default:
		t.Fatalf("recoverytest: MakeFS: unknown type %q", typ)
	}
	testenv.RequireCommand(t, argv[0])
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return path
}

// Part is a partition of an image made by PartitionedImage.
type Part struct {
	// SizeMiB is the partition's size.
	SizeMiB int64
	// Type is sfdisk's type shortcut: "L" (Linux filesystem), "S" (swap),
	// "U" (EFI).
	Type string
	// FS is a file made by MakeFS whose content is copied into the
	// partition, or "" to leave it empty.
	FS string
}

// PartitionedImage makes a sparse image with a GPT (sfdisk) holding parts
// in order, the first at 1 MiB, and the content of each part's FS copied
// in (data extents only). It returns the image's path and the byte offset
// of each partition.
func PartitionedImage(t testing.TB, parts ...Part) (string, []int64) {
	t.Helper()
	testenv.RequireCommand(t, "sfdisk")
	size := int64(2 * MiB)
	var script strings.Builder
	script.WriteString("label: gpt\n")
	offs := make([]int64, len(parts))
	off := int64(MiB)
	for i, p := range parts {
		fmt.Fprintf(&script, "start=%d, size=%d, type=%s\n", off/512, p.SizeMiB*MiB/512, p.Type)
		offs[i] = off
		off += p.SizeMiB * MiB
		size += p.SizeMiB * MiB
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := sparseFile(path, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	for i, p := range parts {
		if p.FS == "" {
			continue
		}
		if fi, err := os.Stat(p.FS); err != nil || fi.Size() > p.SizeMiB*MiB {
			t.Fatalf("recoverytest: filesystem %s does not fit partition %d (%v)", p.FS, i+1, err)
		}
		if err := CopyInto(path, offs[i], p.FS); err != nil {
			t.Fatal(err)
		}
	}
	return path, offs
}

// WholeDiskImage returns a copy of the filesystem file fs: an image with a
// filesystem on the whole disk.
func WholeDiskImage(t testing.TB, fs string) string {
	t.Helper()
	fi, err := os.Stat(fs)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := sparseFile(path, fi.Size()); err != nil {
		t.Fatal(err)
	}
	if err := CopyInto(path, 0, fs); err != nil {
		t.Fatal(err)
	}
	return path
}

// CorruptExt overwrites the group descriptors of an ext filesystem made
// by MakeFS (4 KiB blocks) that starts at off in path: its superblock (and
// so its type) stays, but e2fsck -fn finds errors.
func CorruptExt(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 2*4096)
	for i := range junk {
		junk[i] = 0xa5
	}
	if _, err := f.WriteAt(junk, off+4096); err != nil {
		t.Fatal(err)
	}
}

// Extents calls fn with each data extent of the file at path (holes left
// out), in order.
func Extents(path string, fn func(off int64, data []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	const chunk = 4 * MiB
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		for p := data; p < hole; {
			n := min(hole-p, chunk)
			if _, err := f.ReadAt(buf[:n], p); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if err := fn(p, buf[:n]); err != nil {
				return err
			}
			p += n
		}
		off = hole
	}
	return nil
}

// CopyInto copies the data extents of src into dst at off.
func CopyInto(dst string, off int64, src string) error {
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = Extents(src, func(o int64, data []byte) error {
		_, err := f.WriteAt(data, off+o)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func sparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
