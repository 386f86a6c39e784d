// Package guesttest builds a real, bootable Linux system disk for the tests
// of the boot runner (recovery/boot) and the end-to-end tests that boot a
// recovered machine: an MBR disk whose first partition is an ext4 root with
// GRUB (grub-pc-bin, i386-pc) in the MBR gap, the kernel of Debian's
// linux-image-amd64, an initramfs built here (busybox-static and the kernel
// modules the root needs: virtio_blk, ahci, sd_mod, ext4, virtio_net), and a
// busybox init that prints to the serial console what a test checks: a
// marker line and the sha256 of /lifeboat/check, then a login prompt.
//
// With Options.UEFI the disk is a GPT instead, for OVMF: partition 1 an EFI
// system partition (FAT, written with mkfs.vfat and mtools) holding the
// kernel, whose EFI stub the UEFI shell starts from startup.nsh with the
// kernel command line, and the initramfs; partition 2 the ext4 root.
//
// The kernel is taken with `apt-get download` (cached in a directory the
// caller names, /var/cache/lifeboat-test/debs by default) and unpacked with
// `dpkg-deb -x` once into the cache's unpacked/ directory (then depmod);
// later builds reuse that tree. It is never installed on the
// host. The image is written as a file, with no loop device and no mount:
// sfdisk writes the table, `mkfs.ext4 -d` makes the root from a staging
// directory at the partition's offset, and GRUB's boot.img and core.img
// (grub-mkimage) are written into the MBR and the gap after it the way
// grub-bios-setup does. grub-install is not used: it finds the drive of
// --boot-directory by probing the host's devices, and on this project's
// kernels (no partition-table parser; a loop device's partitions come from
// partx) it fails with "cannot find a GRUB drive for /dev/loopNp1". Nothing
// of the host's disks or its /boot is ever in reach.
//
// DamageKernel overwrites the kernel's blocks in a copy of the image, for
// the test of a boot that must fail.
//
// # What it must never do
//
//   - install a package's kernel on the host, or write anything but the
//     image file it builds (no loop device, no mount, no grub-install);
//   - leave its staging directories anywhere but Options.Dir.
//
// It needs the Debian packages of scripts/install-deps.sh and write
// access to the .deb cache (root for the default one); it is test support,
// not product code.
package guesttest
