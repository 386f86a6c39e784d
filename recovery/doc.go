// Package recovery owns what Lifeboat does with a machine's disks once they
// are materialized: today the inspection of disk images (partition tables,
// filesystems) and their read-only checks; failover, failback and plan
// execution move here as they grow out of the server.
//
// # Image inspection
//
// ReadTable parses the partition table of a raw disk image in Go: a GPT
// (primary header at LBA 1, or the backup header at the last LBA when the
// primary is damaged; 512- and 4096-byte sectors; both CRC32s checked) or
// an MBR with its extended-partition chain. It does not rely on the kernel,
// which on this project's hosts has no partition-table parser compiled in
// (losetup -P finds nothing). DetectFS recognizes a filesystem by its
// superblock magic at an offset of the image.
//
// CheckImage finds the filesystems of an image: the whole disk when a
// filesystem starts at offset 0, else each partition of its table. It checks
// each one read-only: e2fsck -fn for ext2/3/4, xfs_repair -n for xfs. A
// whole-disk filesystem is checked on the image file itself; a partition
// through a read-only loop device limited to the partition (losetup
// --read-only --offset --sizelimit), detached before CheckImage returns,
// whatever happened. Other filesystems are reported as unsupported, never
// checked.
//
// # What it must never do
//
//   - write to an image: every tool runs in its no-modify mode, every loop
//     device is read-only;
//   - leave a loop device attached;
//   - trust a length or an offset read from an image before checking it
//     against the image's size;
//   - treat a check it could not run as a success: that is a CheckError.
package recovery
