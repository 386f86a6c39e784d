package guesttest

import (
	"fmt"
	"os"
	"path/filepath"
)

// startupNSH is run by OVMF's UEFI shell when no boot entry starts a
// loader: it starts the kernel's EFI stub with the command line and the
// initramfs. The kernel is not at \EFI\BOOT\BOOTX64.EFI on purpose: OVMF
// would start it from there without a command line.
const startupNSH = "fs0:\r\n\\vmlinuz.efi root=LABEL=" + RootLabel + " console=ttyS0,115200 quiet panic=-1 initrd=\\initrd.img\r\n"

// writeESP makes the FAT EFI system partition in a file with mkfs.vfat and
// mtools (no mount) and copies it into the image's first partition.
func writeESP(dir, img, kernel, initrd string) error {
	esp := filepath.Join(dir, "esp.img")
	if err := os.Remove(esp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("guest: esp: %w", err)
	}
	if _, err := run("", "mkfs.vfat", "-C", "-F", "16", "-n", "LIFEBOATESP", esp, fmt.Sprint(espSize/1024)); err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	nsh := filepath.Join(dir, "startup.nsh")
	if err := os.WriteFile(nsh, []byte(startupNSH), 0o644); err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	for _, c := range [][2]string{{kernel, "::/vmlinuz.efi"}, {initrd, "::/initrd.img"}, {nsh, "::/startup.nsh"}} {
		if _, err := run("", "mcopy", "-i", esp, c[0], c[1]); err != nil {
			return fmt.Errorf("guest: esp: %w", err)
		}
	}
	b, err := os.ReadFile(esp)
	if err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, partStart); err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("guest: esp: %w", err)
	}
	return f.Close()
}
