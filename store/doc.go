// Package store is target storage: the replicas of the protected disks,
// their retained journals and the recovery points that can be rebuilt from
// them. Store (store.go) is the interface the process server writes through
// and recovery reads through; Local (local.go) is the embedded default, a
// local directory of sparse image files and journal segments; store/azblob
// is the Azure Blob Storage backend. What does not depend on where the
// bytes live (segment checks, cut lists, point listing, the retention
// plan) is written once, in backend.go and PlanPrune, for both.
//
// # The local directory
//
//	DIR/store.json                                  {"format":"lifeboat-local","version":1}
//	DIR/lock                                        flock(2): one process owns DIR
//	DIR/machines/<machine>/disks.json               the disk set of SetDisks
//	DIR/machines/<machine>/disks/<disk>/current.img sparse raw image: base and every applied segment
//	DIR/machines/<machine>/disks/<disk>/base.img    sparse raw image: the disk before the oldest retained segment
//	DIR/machines/<machine>/disks/<disk>/base_seq    {"last_merged":N}: the last segment folded into base.img (absent: none)
//	DIR/machines/<machine>/disks/<disk>/journal/%016x.hrl  each retained segment, a verified copy
//	DIR/machines/<machine>/disks/<disk>/journal/%016x.idx  its extent index (index.go)
//	DIR/machines/<machine>/disks/<disk>/cuts.json   the cuts of the journal, in journal order, and pending notes
//	DIR/machines/<machine>/disks/<disk>/applied     {"seq":N,"size":S,"time":T}: last applied segment
//
// Disks live under a disks/ directory of their own, not next to disks.json,
// so that no disk name (say "disks.json") can collide with a file of the
// machine. Machine and disk names are [A-Za-z0-9._-]{1,63}, never "." or
// "..": they are path elements, so CheckName guards every entry point.
//
// base.img starts as all zeros (a sparse file of the disk's size) and the
// journal as every segment from 0. Prune (retention) folds the oldest
// segments into base.img and deletes them; the journal then holds the
// segments from baseSeq = last_merged+1 on. Every file added since the
// first layout (base_seq, the .idx files, the new fields of cuts.json) is
// optional to a reader of this code, so store.json stays at version 1; an
// older reader of a pruned store fails on the missing segments rather than
// giving a wrong image.
//
// # Apply
//
// Apply takes a segment the process server has verified and made durable
// in its cache, and trusts none of it: hrlfmt reads and checks every
// record, the trailer included, that nothing follows it, and the header's
// machine, disk and sequence number; a segment that fails any check is not
// kept and nothing of it is applied. The checked file is then hard-linked
// as journal/%016x.hrl (no copy: the process server never writes to a
// cache file, it only removes its name once the segment is applied), the
// file and the directory fsynced. Where a link is not possible (the cache
// on another file system), it is copied into a temporary file, fsynced,
// checked again, and renamed, and the directory fsynced. The check gives
// the segment's hrlfmt.Map (every record and where it lies, without data).
// ApplyMapped is Apply for a caller that has checked the whole file itself
// (the process server, as the segment arrived) and passes the Map it got:
// only the header, the trailer's presence and the file's size are checked
// again, and the segment is not decoded a second time. From the Map, a
// second pass writes the records of the journal entry (the bytes verified,
// which the store owns) to current.img in order: raw DATA with
// copy_file_range from the journal file (pread and pwrite where the file
// system refuses), lz4 DATA read, uncompressed and written with pwrite,
// ZERO by punching a hole (FALLOC_FL_PUNCH_HOLE, or writing zeros where
// the file system cannot punch), CUT by noting the cut with its place in the journal (sequence
// number and byte offset of the record), NOTE by noting what it says of
// its point; the same pass lists the segment's DATA and ZERO records for
// its extent index. current.img (and base.img, grown when a header gives a
// larger disk size) is fsynced, then the index journal/%016x.idx is
// written, then cuts.json is rewritten, and only then the applied marker.
//
// A NOTE record (hrlfmt 1.1) describes the point whose CUT follows it:
// the cut gets the note of its point id from the same segment or, when a
// full segment was rotated between the two, from the pending notes of
// earlier segments that cuts.json keeps until a cut takes them (or
// retention folds their segment into the base).
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
// journal holds the same point id twice, the first cut counts. Its Freeze
// and Note come from the NOTE record of the first disk by name that has one
// for it. It is materializable unless retention dropped it: Prune marked
// its cut dropped on some disk, or the cut lies in a segment some disk has
// folded into its base.
//
// # Retention
//
// Prune(machine, r, now) keeps, of the listed points (zero fields of r
// are DefaultRetention's; a KeepAll longer than Window widens the window),
// with age = now − point time:
//
//   - the newest point (the last listed), whatever its age: an idle
//     machine keeps its last point;
//   - every point with age ≤ KeepAll;
//   - of the points with KeepAll < age ≤ Window, the newest of each Thin
//     bucket: buckets are fixed intervals [k·Thin, (k+1)·Thin) of time
//     since the Unix epoch (whole UTC hours for 1 h), and a bucket's
//     newest point is its latest in time among all listed points, so a
//     bucket still partly within KeepAll keeps none of its older points;
//   - no point with age > Window.
//
// The others are dropped: a dropped point is never materializable again,
// even under a wider policy later. It stays listed, with Materializable
// false, as long as it is within the window; a dropped point older than
// the window is no longer listed (Prune forgets its cut). Then, on each
// disk, every segment entirely before the segment of the oldest kept cut
// is folded into base.img, oldest first, and deleted; the segment holding
// that cut is not, as Materialize replays it from its start. The cuts of
// points never listed and the pending notes of the folded segments leave
// cuts.json with them. Without any kept point (the newest was dropped by
// an earlier Prune and none came since) nothing is folded.
//
// Order and crash safety. Prune first marks the dropped cuts in cuts.json
// of every disk (under the disk's apply lock, as Apply rewrites the file
// too), so that no point whose segments are about to go is listed as
// materializable. Then, one segment at a time and under the disk's
// journal write lock: every record of the segment is written to base.img,
// which is fsynced; then the base_seq marker names the segment; then the
// segment and its index are deleted. A journal segment is never deleted
// before the marker covers it. A crash before the marker moves leaves in
// base.img part or all of a segment that the journal still holds and every
// kept point replays whole, and base writes are absolute (replaying a
// record over its own effect changes nothing), so every kept point still
// materializes exactly; a crash after it leaves a merged segment that the
// next Prune deletes. Prune again continues where the last one stopped.
// One Prune of a machine runs at a time.
//
// # Materialize
//
// Materialize takes the journal read lock of every disk of the point (in
// name order) and looks the point up again under them: while it works, no
// Prune moves any of its bases. It writes each disk into
// outDir/<disk>.img: a sparse copy of base.img (FICLONE when the file
// system can share extents, else only the data extents found with
// SEEK_DATA/SEEK_HOLE), then, for the segments from baseSeq to the
// segment of the point's cut (that one only before its cut record), it
// reads their extent indexes and works out which byte ranges each DATA
// or ZERO record is the newest version of up to the cut (a sweep over the
// extents' ends, O(n log n)); a segment without an index (a store written
// before indexes existed) is read whole to build one in memory. ZERO ranges are
// punched; only the DATA records that hold the newest version of some
// byte are read (in file order, contiguous ones together, each checked by
// hrlfmt and compared with its index entry) and only those bytes are
// written. Its cost is therefore the copy of base.img (nothing but
// metadata with reflinks) plus the data changed between the base and the
// point, each byte read and written once, not the size of the disk nor of
// the journal. The record at the cut's place must be the point's CUT. The
// image has the disk's size as of the cut. This replay takes no lock Apply
// holds: the segments up to an applied cut are immutable, so it runs while
// replication goes on.
//
// Where the store's file system shares extents (Local.Reflink, probed at
// OpenLocal) and it writes fewer bytes, Materialize rewinds instead: it
// clones current.img (FICLONE) and lists the journal segments after the
// cut's, both under the disk's cur read lock (Apply writes current.img
// under the write lock, and only records of segments already in the
// journal directory, applied or not yet: an interrupted Apply's segment
// is listed too). Every byte range that a record after the cut writes
// (the cut segment's rest and those segments, from their indexes) is
// punched, then filled again as it was at the cut: from base.img where
// no record up to the cut covers it, else from the newest piece as in the
// replay. Its cost is a clone plus the data changed after the point; the
// newest point is a clone. The lock is held for the listing and the clone
// only (tens of milliseconds), so Apply waits at most that long.
//
// Materialize does not read the records that later ones overwrite, so it
// does not notice damage to them; nor, rewinding, the records whose bytes
// it takes from current.img, where Apply wrote them after checking them.
// Prune, which reads every record of the segments it folds, does. The
// segment's trailer and chain checksum are checked when the segment is
// applied and when it is folded.
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
//     nor trust a segment on disk, its own journal included: every record it
//     reads goes through hrlfmt's checks (and, read through an extent index,
//     must be the record the index names), and any error stops the work
//     with an error;
//   - move the applied marker before current.img, the journal copy, its
//     index and the cut list are durable, or list a point whose cut is not
//     durable on every disk of the machine;
//   - delete a journal segment before base.img holds it durably and the
//     base_seq marker covers it, or list as materializable a point whose
//     segments are merged;
//   - change a journal segment once applied (Prune only deletes it, once
//     merged), or an image it did not create: Materialize refuses to
//     overwrite an existing outDir/<disk>.img;
//   - use a name from the network as a path element without CheckName;
//   - let two processes write one directory: OpenLocal takes a lock.
//
// It knows nothing of transport, certificates, agents or the catalog of the
// configuration server; the process server calls it, recovery reads it.
package store
