// Package server is lifeboat-server: the configuration role (registration
// and the admin API, over HTTPS), the process role (the replication
// gateway of docs/protocol.md, over mutual TLS 1.3) and the master-target
// role (mastertarget.go: failback sessions, at most one per machine, run
// with recovery.Failback on this host and driven through the
// configuration role's admin API). One Server runs the roles it is given on one
// data directory (see docs/server.md for its files).
//
// The process role receives a segment by streaming it into a temporary
// file of its cache while verifying it whole with hrlfmt as it streams
// (hrlfmt.Scan: every checksum, the trailer, and a header that names the
// certificate's machine, the URL's disk and sequence number), fsyncs it,
// notes its cuts in the disk's cut log, renames it to its final name and
// fsyncs the directory; only then does it acknowledge it. One applier
// goroutine per disk applies the durable segments in order to target
// storage (a store.Store) and deletes each from the cache once applied; it
// retries with backoff. The applier passes the map the receipt's check
// made of the segment (segmap.go), so that target storage does not decode
// it again; a segment without one (acknowledged before a restart, over the
// maps' memory budget, or a cache file that is not the one received) is
// read and checked again by store.Apply.
//
// Restart: the next sequence number of a disk is derived from target
// storage's applied sequence and the contiguous cached segments after it,
// so a server killed at any moment loses no acknowledged segment, and a
// segment applied but not yet deleted from the cache is recognized and
// deleted (Apply is idempotent anyway).
//
// Recovery (failover.go, retention.go, plans.go): the configuration role
// materializes a machine's disks at a point (store.Materialize), checks
// their filesystems read-only with recovery.Checker when asked, and records
// a real failover in the machine's record (DataDir/machines/<m>.json):
// protected → failed-over → committed. A committed machine's process-role
// requests are answered 410 until it registers again. The pruner (process
// role) applies each protected machine's retention policy to target
// storage every Config.PruneInterval; its errors are logged and shown in
// the machine's problems, never fatal. Recovery plans (DataDir/plans/) fail
// over machines group by group and run scripts between groups. The
// orchestration lives here, next to the machine records it changes; image
// inspection lives in recovery/ (DESIGN.md §9 puts all of recovery there:
// the orchestration moves once failback needs it too).
//
// Scale-out (servers.go: configuration role; scaleout.go: joined process
// server). Process servers that join with the registration passphrase get
// a certificate "lifeboat-server:<id>" from the CA, report every 2 s and
// learn the machines assigned to them; only the assigned server accepts a
// machine's process-role requests. The replica is kept over a move by
// sharing target storage (--store on a shared file system, opened with
// --shared-store) rather than by copying it between servers: a copy costs
// the size of every disk per move and needs a second, consistent transfer
// protocol, while a shared store costs nothing at the move and is what the
// planned Azure Blob backend gives anyway. A move drains the old server
// first (no upload accepted after the mark, every acknowledged segment
// applied), then flips the assignment; a drained joined server refuses the
// machine until it is assigned it again with a larger epoch, so a stale
// heartbeat answer cannot revive it. Each machine has one writer; prune
// (assigned server) and materialize (configuration server) exclude each
// other across processes with flock.
//
// What it must never do:
//   - acknowledge a segment before it is durable and verified, or change
//     anything already accepted because of a bad request;
//   - let a machine write anything but its own disks: the machine is always
//     the client certificate's CommonName, never a name from a URL or body;
//   - let an agent certificate use the admin API, or the admin certificate
//     replicate;
//   - use a name from the network as a path element before api.ValidName
//     has accepted it;
//   - change a machine's state on a test failover, or on a real failover
//     whose requested check failed; accept anything from a committed
//     machine's old source;
//   - write to a materialized image while checking it;
//   - accept or apply a machine's segments on a process server it is not
//     assigned to, or acknowledge a segment during a move's drain.
package server
