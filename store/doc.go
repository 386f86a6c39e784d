// Package store is target storage: the replicas of the protected disks,
// their retained journals and the recovery points that can be rebuilt from
// them. Store (store.go) is the interface the process server writes through
// and recovery reads through; Local (local.go) is the embedded default, a
// local directory of sparse image files and journal segments. An Azure Blob
// Storage backend comes later behind the same interface.
//
// # The local directory
//
//	DIR/store.json                                  {"format":"lifeboat-local","version":1}
//	DIR/lock                                        flock(2): one process owns DIR
//	DIR/machines/<machine>/disks.json               the disk set of SetDisks
//	DIR/machines/<machine>/disks/<disk>/current.img sparse raw image: base and every applied segment
//	DIR/machines/<machine>/disks/<disk>/base.img    sparse raw image: the disk before the oldest retained segment
//	DIR/machines/<machine>/disks/<disk>/journal/%016x.hrl  each applied segment, a verified copy
//	DIR/machines/<machine>/disks/<disk>/cuts.json   the cuts of the journal, in journal order
//	DIR/machines/<machine>/disks/<disk>/applied     {"seq":N,"size":S,"time":T}: last applied segment
//
// Disks live under a disks/ directory of their own, not next to disks.json,
// so that no disk name (say "disks.json") can collide with a file of the
// machine. Machine and disk names are [A-Za-z0-9._-]{1,63}, never "." or
// "..": they are path elements, so CheckName guards every entry point.
//
// Nothing is merged yet: base.img is all zeros (a sparse file of the disk's
// size) and the journal holds every segment from 0. Retention, a later
// change, folds the oldest segments into base.img and then deletes them; it
// must record the first retained sequence number (baseSeq) and take the
// disk's journal lock for writing, which Materialize holds for reading.
//
// # Apply
//
// Apply takes a segment the process server has verified and made durable
// in its cache, and trusts none of it: in one pass it copies the segment
// into the journal directory (a temporary file) while hrlfmt reads and
// checks every record, the trailer included, and the header's machine, disk
// and sequence number; a segment that fails any check is not kept and
// nothing of it is applied. The copy is fsynced and renamed to
// journal/%016x.hrl, and the directory fsynced. A second pass reads the
// journal copy (the bytes just verified, which the store owns) and writes
// its records to current.img in order: DATA with pwrite, ZERO by punching a
// hole (FALLOC_FL_PUNCH_HOLE, or writing zeros where the file system cannot
// punch), CUT by noting the cut with its place in the journal (sequence
// number and byte offset of the record). current.img (and base.img, grown
// when a header gives a larger disk size) is fsynced, then cuts.json is
// rewritten, and only then the applied marker.
//
// Every metadata file is replaced crash-safely: a temporary file in the
// same directory, fsync, rename, fsync of the directory; every directory
// the store creates is fsynced into its parent.
//
// A disk never shrinks in the store: a segment whose header gives a
// smaller size than an earlier one is applied (its records lie within it)
// and the larger size stays, for the replica and for points.
//
// Order: the first segment of a disk is 0 and each next one is applied+1.
// A sequence number already applied is a no-op (the server may apply a
// segment again after a crash or a retransmission); one beyond applied+1
// is an error that wraps ErrOutOfOrder and changes nothing.
//
// Crash safety rests on two facts. The records of a segment are absolute
// writes, so applying a segment whose records are already (partly) in
// current.img gives the same image; and the applied marker moves only after
// everything else of the segment is durable. A crash anywhere in Apply
// therefore leaves a state from which Apply of the same segment gives
// exactly the result of an uninterrupted Apply. Cuts of segments beyond the
// applied marker (written by an interrupted Apply) are ignored by every
// reader and replaced when the segment is applied again. If a segment
// differs from the journal copy an interrupted Apply of the same sequence
// number left, Apply refuses it: the replica may hold part of the other
// segment and only a resync can make it trustworthy again.
//
// # Points
//
// A point is listed when every disk of the machine's disk set (SetDisks, or
// when it was never called, every disk that has a journal) has a cut with
// the point's id in an applied segment. Its kind, time and generation come
// from the cut on the first disk in name order; points are ordered as their
// cuts are in that disk's journal, which is oldest first. When one disk's
// journal holds the same point id twice, the first cut counts.
//
// # Materialize
//
// Materialize writes each disk of a point into outDir/<disk>.img: a sparse
// copy of base.img (FICLONE when the file system can share extents, else
// only the data extents found with SEEK_DATA/SEEK_HOLE), then the disk's
// journal segments from baseSeq to the segment of the point's cut, the last
// one up to its cut record only (records after the cut are not applied),
// each segment read and checked again. Its cost is the size of base's data
// and of the journal up to the point, not the size of the disk. The image
// has the disk's size as of the cut. It never takes a lock Apply holds: the
// segments up to an applied cut are immutable, and it reads the cut list
// once; so it runs while replication goes on.
//
// # Hashes
//
// Hashes hashes current.img under the disk's read lock, so it sees the
// state between two segments, never the middle of one. Bytes beyond the end
// of the replica read as zeros, as they will once a segment grows it; a
// disk known from SetDisks but never applied hashes as all zeros. After a
// crash in the middle of Apply, current.img holds part of the interrupted
// segment until it is applied again: the process server applies its
// pending segments before it answers hashes.
//
// # What it must never do
//
//   - apply or keep anything of a segment it has not read whole and checked,
//     nor trust a segment on disk, its own journal included: every read goes
//     through hrlfmt's checks, and any error stops the work with an error;
//   - move the applied marker before current.img, the journal copy and the
//     cut list are durable, or list a point whose cut is not durable on every
//     disk of the machine;
//   - change a journal segment once applied, or an image it did not create:
//     Materialize refuses to overwrite an existing outDir/<disk>.img;
//   - use a name from the network as a path element without CheckName;
//   - let two processes write one directory: OpenLocal takes a lock.
//
// It knows nothing of transport, certificates, agents or the catalog of the
// configuration server; the process server calls it, recovery reads it.
package store
