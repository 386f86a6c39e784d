// Package boot boots a recovered machine's materialized raw disk images in
// qemu-system-x86_64 to prove that a recovery point comes back: the
// boot-verified test failover and the drills of docs/boot.md (issue 12).
//
// Boot picks the firmware from the first disk's partition table (SeaBIOS
// for MBR, OVMF for a GPT with an EFI system partition), KVM when /dev/kvm
// is usable and TCG otherwise, a disk bus (virtio-blk, falling back to
// AHCI when the guest does not come up on virtio), boots the disks through
// qcow2 overlays, captures the serial console to a log, waits until the
// console shows a login prompt or the caller's ready pattern, and runs the
// caller's verify script on the host. The result says what was used, what
// happened and how long each part took.
//
// # What it must never do
//
//   - write the caller's images: the guest writes only qcow2 overlays in a
//     temporary directory, the images are their read-only backing files;
//   - give the guest a network beyond one host-forwarded TCP port on
//     127.0.0.1 (none at all by default; a restricted user-mode network
//     with NetIsolated);
//   - leave a qemu process or a temporary file behind, on success, failure
//     or cancel, unless the caller asked to keep the VM (then VM.Stop
//     removes both);
//   - run qemu at the priority of replication: it runs under nice 10 and
//     ionice best-effort 7.
//
// Booting is Linux only; elsewhere Boot returns ErrNotSupported.
package boot
