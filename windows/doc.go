// Package windows is the Windows change tracker (docs/ARCHITECTURE.md §3,
// docs/windows.md): a tracker.Tracker for the NTFS volumes of the protected
// disks that works from user space, with no kernel driver (a new driver
// needs Microsoft's signature).
//
// At each cut it takes a VSS snapshot set of the disks' volumes and derives
// the extents changed since the previous cut, as whole-disk byte offsets:
//
//   - USN journal records read up to a USN queried before the snapshot
//     was made: V4 records (range tracking) give the file ranges written,
//     mapped to clusters through the file's retrieval pointers read on the
//     snapshot; a file with only V2/V3 data records is dirty whole;
//   - a file whose data-change record has no CLOSE yet (a file kept open,
//     e.g. a database) gets no further records until it closes, so its
//     clusters, and those of NTFS's own metadata files ($MFT, $LogFile,
//     $Bitmap, the journal, ...), are hashed per block on every cut and
//     only the blocks that differ from the previous cut are dirty;
//   - the directories named as parents of created, deleted or renamed
//     files have their index allocation dirty whole;
//   - clusters allocated since the previous cut (a diff of the volume
//     bitmap) are dirty, which catches files moved to other clusters;
//   - the partition's offset is added to every volume offset.
//
// The data of a cut is to be read from the snapshot, never from the live
// volume (Snapshot is the only reader the cut and the sweep are given). Raw writes to the volume and clusters freed and
// reused within one cut are not seen per cut: a rate-limited sweep hashes
// allocated blocks of the snapshot against what it saw before and turns an
// unreported difference into a dirty extent, counted as a miss.
//
// A tracking gap (journal id changed, journal entries deleted before they
// were read, state unknown after a crash, a volume that is not NTFS) is a
// *tracker.ResyncRequiredError, as the Linux tracker reports one.
//
// Everything but the Windows calls is platform-free and tested on Linux:
// the record parsers against the documented byte layouts, the mapping
// against real NTFS images made by ntfs-3g's tools, the cut and the sweep
// over a volume layer backed by such images. The Windows calls (VSS through
// COM, DeviceIoControl) are in the _windows.go files behind the Snapshot
// and System interfaces; they compile and vet here but have never run on
// Windows (docs/windows.md lists what is proven and what is missing).
//
// The package never writes data to a protected volume (it only creates the
// USN journal where there is none and turns range tracking on, both NTFS
// settings) and never reads the data of a cut from the live volume.
package windows
