// Package azblob is target storage in an Azure Blob Storage container,
// the second backend of store.Store (store.Local is the first). Process
// servers that share an account need no shared file system: a blob lease
// per machine lets one of them at a time apply it.
//
// # Layout in the container
//
//	lifeboat.json                                       {"format":"lifeboat-azblob","version":1}
//	machines/<machine>/disks.json                       the disk set of SetDisks (ETag-replaced)
//	machines/<machine>/lease                            empty block blob; its lease = the right to write the machine
//	machines/<machine>/disks/<disk>/replica.vhd         page blob: the replica in fixed-VHD layout
//	machines/<machine>/disks/<disk>/base.vhd            page blob: the disk before the oldest retained segment (after a Prune)
//	machines/<machine>/disks/<disk>/cuts.json           the cut list (store.CutList), ETag-replaced
//	machines/<machine>/disks/<disk>/journal/%016x.hrl   block blob: each segment, metadata lifeboatsha256
//	machines/<machine>/disks/<disk>/journal/%016x.idx   block blob: its extent index (store.SegmentIndex)
//	machines/<machine>/readers/<id>                     empty block blob, leased while a materialization reads
//
// replica.vhd is the disk's bytes, its virtual size rounded up to 1 MiB,
// then a 512-byte VHD footer (vhd.go): Azure can make a managed disk of it
// as it is. Its metadata holds the applied marker: lifeboatappliedseq (the
// last segment applied) and lifeboatdisksize (the disk's exact size). A
// disk that grows grows the blob: the old footer's page is cleared (it
// becomes disk data) and a new footer written.
//
// Metadata blobs (disks.json, cuts.json, lifeboat.json) are written whole
// in one Put Blob, on condition: If-None-Match * to create, If-Match the
// ETag read to replace. A crash never leaves one half-written, and a
// second writer never overwrites a newer one (ErrConflict).
//
// # Apply
//
// Apply takes the machine's lease with a call to the service every time
// (60 s, renewed in the background every 20 s too, its id
// derived from the process server's name, so a restarted server takes its
// leases back at once and another cannot: LeaseError with a hint;
// ReleaseMachine gives it up when the machine moves away), checks
// the segment whole (store.CheckSegment), keeps it as a block blob (one
// already there from an interrupted Apply must have the same SHA-256, or
// the apply is refused: resync), writes its records to replica.vhd in
// order (DATA with Put Page, ZERO with Clear Pages; both 512-byte aligned
// and at most 4 MiB a call, checked by the client since Azurite accepts
// what Azure refuses; the partial pages at an unaligned extent's ends are
// read, patched and put back), writes its index, merges its cuts into
// cuts.json (store.MergeCuts), renews the lease again (a server whose lease
// was broken and taken learns it here, before the marker), and only
// then sets the applied marker. The segment's SHA-256 in its journal
// blob's metadata is what SegmentSum gives for an applied segment: the
// process server compares a segment sent again with it when its own digest
// log does not hold it (after a scale-out move, or a restart without its
// cache). Records are absolute writes, so Apply of
// the same segment after a crash anywhere gives the uninterrupted result;
// cuts of segments beyond the marker are ignored by every reader. The SDK
// retries throttling (429), timeouts and 5xx with exponential backoff.
//
// The process server's cache stays on its local disk: Apply runs after a
// segment is durable there and acknowledged, never before.
//
// # Points, materialize, hashes
//
// Points are listed by store.ListPoints from the cut lists, exactly as for
// store.Local. Materialize, under the disk's journal read lock, copies
// into outDir/<disk>.img (sparse) only the allocated page ranges of
// base.vhd (Get Page Ranges; never Get Page Ranges Diff, which Azurite
// does not implement), then replays the journal blobs from the base's
// first segment to the point's cut, checking every record with hrlfmt and
// that the cut's record is the point's CUT. Hashes reads replica.vhd.
//
// # Retention
//
// Prune decides with store.PlanPrune, as the local store does, marks the
// dropped cuts in every disk's cut list (ETag), then folds each segment
// before the oldest kept cut into base.vhd, oldest first: its records
// into the page blob, then base.vhd's metadata lifeboatlastmerged past
// it, then the segment and its index deleted. A crash before the marker
// moves leaves in the base part of a segment the journal still holds and
// every kept point replays whole (absolute writes); one after it leaves a
// merged segment the next Prune deletes.
//
// # Readers: retention fenced across hosts
//
// The journal lock excludes Prune from Materialize within one process
// (the all-in-one server). Across hosts (a configuration server
// materializing while a process server prunes), every Materialize and
// MaterializeToBlob first registers as a reader: a blob
// machines/<machine>/readers/<id> it holds a lease on, renewed until it is
// done. Prune looks for live readers before it folds each segment and
// again, after the base's marker moved, before it deletes segments; while
// one is there it stops for that disk (PruneResult.Deferred). A reader
// registers before it reads the cut lists, so a point a concurrent Prune
// dropped is seen dropped (readers.go has the argument and the grace
// given to a reader between creating its blob and leasing it).
//
// # To blob
//
// MaterializeToBlob makes each disk at a point a new fixed-VHD page blob
// <machine>/<point>/<disk>.vhd in another container of the account: Copy
// Blob (on the service's side) of a snapshot of base.vhd, whose metadata
// says its first segment, then the journal's records from there to the
// point's cut written with Put Page / Clear Pages, then the footer with a
// new disk id. It never overwrites a blob (If-None-Match) and deletes what
// it made on failure.
//
// # Not yet
//
// Materialize and MaterializeToBlob replay segments whole (not yet
// through their indexes) and write records one by one.
//
// It must never: acknowledge anything (the process server does that, from
// its local cache); move the applied marker before the records, journal,
// index and cuts are stored, or without the lease; put a credential in an
// error, a log line or the API (Credential.String shows only its source).
package azblob
