package recovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Filesystem types DetectFS reports.
const (
	FSExt2  = "ext2"
	FSExt3  = "ext3"
	FSExt4  = "ext4"
	FSXFS   = "xfs"
	FSBtrfs = "btrfs"
	FSSwap  = "swap"
	FSVFAT  = "vfat"
	FSNTFS  = "ntfs"
	FSLVM   = "LVM2_member"
)

// ext superblock fields (offsets within the superblock, which starts 1024
// bytes into the filesystem).
const (
	extSuperOff      = 1024
	extMagicOff      = 56
	extCompatOff     = 92
	extIncompatOff   = 96
	extROCompatOff   = 100
	extMagic         = 0xEF53
	extCompatJournal = 0x4
	// INCOMPAT_EXTENTS, _64BIT, _FLEX_BG, _MMP, _INLINE_DATA: ext4 only.
	extIncompatExt4 = 0x40 | 0x80 | 0x200 | 0x100 | 0x8000
	// RO_COMPAT_HUGE_FILE, _GDT_CSUM, _DIR_NLINK, _EXTRA_ISIZE,
	// _METADATA_CSUM: ext4 only.
	extROCompatExt4 = 0x8 | 0x10 | 0x20 | 0x40 | 0x400
)

// DetectFS returns the type of the filesystem that starts at off in r and
// is at most size bytes long, or "" when it recognizes none. It reads a
// few superblock fields only; it proves nothing about the filesystem's
// health.
func DetectFS(r io.ReaderAt, off, size int64) (string, error) {
	read := func(at int64, n int) ([]byte, error) {
		if at+int64(n) > size {
			return nil, nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off+at); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("read at %d: %w", off+at, err)
		}
		return b, nil
	}
	head, err := read(0, 4096)
	if err != nil {
		return "", err
	}
	if head == nil {
		return "", nil
	}
	le := binary.LittleEndian
	sb := head[extSuperOff:]
	if le.Uint16(sb[extMagicOff:]) == extMagic {
		switch {
		case le.Uint32(sb[extIncompatOff:])&extIncompatExt4 != 0, le.Uint32(sb[extROCompatOff:])&extROCompatExt4 != 0:
			return FSExt4, nil
		case le.Uint32(sb[extCompatOff:])&extCompatJournal != 0:
			return FSExt3, nil
		}
		return FSExt2, nil
	}
	switch {
	case string(head[:4]) == "XFSB":
		return FSXFS, nil
	case string(head[4086:4096]) == "SWAPSPACE2", string(head[4086:4096]) == "SWAP-SPACE":
		return FSSwap, nil
	case string(head[3:11]) == "NTFS    ":
		return FSNTFS, nil
	case head[510] == 0x55 && head[511] == 0xaa && (string(head[0x36:0x3b]) == "FAT12" || string(head[0x36:0x3b]) == "FAT16" || string(head[0x52:0x57]) == "FAT32"):
		return FSVFAT, nil
	}
	for s := 0; s < 4; s++ {
		l := head[s*512:]
		if string(l[:8]) == "LABELONE" && string(l[24:32]) == "LVM2 001" {
			return FSLVM, nil
		}
	}
	b, err := read(0x10040, 8)
	if err != nil {
		return "", err
	}
	if string(b) == "_BHRfS_M" {
		return FSBtrfs, nil
	}
	return "", nil
}
