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
// # Failback
//
// Failback (failback.go, failback_linux.go) makes on-premises disks equal
// to the recovered ones, for the master-target role. It reads the
// recovered disk and writes the target on the same host: this project's
// failover images live on the server host, so the nearest thing to the
// reference architecture's reverse replication is the master target
// reading them there, rather than a reverse agent-and-process-server
// pipeline with a device-backed store (that would need a second journal
// path and a device store for a one-off copy; the compare below is the
// same as the agent's resync, at a finer grain).
//
// StartFailback refuses a target that is not a block device, is mounted or
// held (it is opened O_EXCL), is tracked by any running Lifeboat tracker
// (tracker.TrackedAnywhere), is smaller than its source or is the source,
// and starts the eBPF tracker on each recovered block device before the
// first compare, so nothing written meanwhile is missed. Run compares
// SHA-256 of 1 MiB blocks, then of the 4 KiB blocks of each 1 MiB block
// that differs, and writes only the 4 KiB blocks that differ; then delta
// passes: a tracker cut, wait until every write of the generations before
// it is delivered and completed, copy their extents (later generations
// wait for the next pass). Complete: freeze the filesystems mounted from
// the recovered disks, last delta, compare everything again (fixing and
// counting what still differs), fsync the targets, thaw.
//
// Failback must never write to the recovered disk, never read an extent
// before its write completed, and never leave a filesystem frozen.
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
