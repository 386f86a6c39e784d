// Package guesttest builds a real, bootable Linux system disk for the tests
// of the boot runner (recovery/boot) and the end-to-end tests that boot a
// recovered machine: an MBR disk whose first partition is an ext4 root with
// GRUB (grub-pc-bin, i386-pc) in the MBR gap, the kernel of Debian's
// linux-image-amd64, an initramfs built here (busybox-static and the kernel
// modules the root needs: virtio_blk, ahci, sd_mod, ext4, virtio_net), and a
// busybox init that prints to the serial console what a test checks: a
// marker line and the sha256 of /lifeboat/check, then a login prompt.
//
// The kernel is taken with `apt-get download` (cached in a directory the
// caller names, /var/cache/lifeboat-test/debs by default) and unpacked with
// `dpkg -x` into a temporary directory; it is never installed on the host.
// GRUB is written into the image through a loop device of the image with
// --boot-directory on the image's mounted root, never onto the host's disks
// or its /boot.
//
// # What it must never do
//
//   - install a package's kernel on the host, or run grub-install on
//     anything but a loop device of the image it builds;
//   - leave a loop device, a partition mapping or a mount behind, whatever
//     failed.
//
// It needs root, loop devices and the Debian packages of
// scripts/install-boot-deps.sh; it is test support, not product code.
package guesttest
