package guesttest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// grubDir holds Debian's GRUB modules and images for BIOS (grub-pc-bin).
const grubDir = "/usr/lib/grub/i386-pc"

// GRUB's i386-pc layout (grub-core/boot/i386/pc/boot.S, diskboot.S).
const (
	kernelSectorOff = 0x5c  // boot.img: LBA of core.img's first sector
	partTableStart  = 0x1b8 // disk signature and partition table, kept
	partTableEnd    = 0x1fe
	blocklistOff    = 512 - 12 // diskboot.img: start(8) len(2) segment(2)
	coreSegment     = 0x820
)

// prepareGRUB copies GRUB's modules to root/boot/grub/i386-pc and makes a
// core image whose prefix is the first partition's /boot/grub.
func prepareGRUB(root, core string) error {
	dst := filepath.Join(root, "boot", "grub", "i386-pc")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	ents, err := os.ReadDir(grubDir)
	if err != nil {
		return fmt.Errorf("guest: grub: %w (install grub-pc-bin: scripts/install-deps.sh)", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".mod") || strings.HasSuffix(n, ".lst") {
			if err := copyFile(filepath.Join(grubDir, n), filepath.Join(dst, n), 0o644); err != nil {
				return err
			}
		}
	}
	if _, err := run("", "grub-mkimage", "-O", "i386-pc", "-d", grubDir, "-o", core,
		"-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2"); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	return nil
}

// installGRUB does what grub-bios-setup does for an MBR disk, on the image
// file: boot.img into the MBR (keeping the partition table), core.img into
// the gap from sector 1, and the block list that tells diskboot where the
// rest of core.img is.
func installGRUB(img, corePath string) error {
	boot, err := os.ReadFile(filepath.Join(grubDir, "boot.img"))
	if err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	core, err := os.ReadFile(corePath)
	if err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	if len(boot) != 512 {
		return fmt.Errorf("guest: grub: boot.img is %d bytes, not 512", len(boot))
	}
	sectors := (len(core) + 511) / 512
	if 1+sectors > partStart/512 {
		return fmt.Errorf("guest: grub: core.img (%d sectors) does not fit before the partition", sectors)
	}
	core = append(core, make([]byte, sectors*512-len(core))...)
	binary.LittleEndian.PutUint64(core[blocklistOff:], 2)
	binary.LittleEndian.PutUint16(core[blocklistOff+8:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(core[blocklistOff+10:], coreSegment)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	copy(boot[partTableStart:partTableEnd], mbr[partTableStart:partTableEnd])
	boot[510], boot[511] = 0x55, 0xaa
	binary.LittleEndian.PutUint64(boot[kernelSectorOff:], 1)
	if _, err := f.WriteAt(boot, 0); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	if _, err := f.WriteAt(core, 512); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("guest: grub: %w", err)
	}
	return f.Close()
}
