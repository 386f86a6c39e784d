// Package process is the process role of lifeboat-server: the replication
// gateway of docs/protocol.md, served over mutual TLS 1.3 by the server
// that composes it (server/). A machine is always the CommonName of its
// client certificate; Machines.Admit, given by the configuration role's
// records, decides whether it may be served here.
//
// It receives a segment by streaming it into a temporary file of its
// cache while verifying it whole with hrlfmt as it streams (hrlfmt.Scan:
// every checksum, the trailer, and a header that names the certificate's
// machine, the URL's disk and sequence number), fsyncs it, notes its cuts
// in the disk's cut log, renames it to its final name and fsyncs the
// directory; only then does it acknowledge it. One applier goroutine per
// disk applies the durable segments in order to target storage (a
// store.Store) and deletes each from the cache once applied; it retries
// with backoff. The applier passes the map the receipt's check made of
// the segment (segmap.go), so that target storage does not decode it
// again; a segment without one (acknowledged before a restart, over the
// maps' memory budget, or a cache file that is not the one received) is
// read and checked again by store.Apply. It also answers the replica's
// hashes, a point's durability, and the link probe.
//
// Retention: Pruner applies each machine's retention policy (from its
// record, PruneRecords) to target storage, every interval for the
// protected machines this server serves (Server.ServesHere) and when the
// configuration role's admin API asks (Prune); it notes the outcome in
// the machine's record. One prune runs at a time; its errors are logged
// and noted, never fatal.
//
// Membership: a process server that joined a configuration server
// (Join writes its data directory and join.json) reports to it every
// api.DefaultHeartbeatSeconds and serves only the machines the last answer
// assigned to it (kept in assignments.json across a restart); the
// configuration server drains a machine on it before a move (POST
// /v1/drain/{m}, from the configuration server's certificate only), and a
// drained machine is refused until assigned again with a larger epoch.
//
// Restart: the next sequence number of a disk is derived from target
// storage's applied sequence and the contiguous cached segments after it,
// so a server killed at any moment loses no acknowledged segment, and a
// segment applied but not yet deleted from the cache is recognized and
// deleted (Apply is idempotent anyway). The formats are
// docs/ARCHITECTURE.md §5; the data path §2.
//
// What it must never do:
//   - acknowledge a segment before it is durable and verified, or change
//     anything already accepted because of a bad request;
//   - let a machine write anything but its own disks: the machine is
//     always the client certificate's CommonName, never a name from a URL
//     or body;
//   - let the admin certificate replicate;
//   - use a name from the network as a path element before api.ValidName
//     has accepted it;
//   - acknowledge a segment of a machine Machines.CheckAssigned refuses
//     (during a move's drain), or keep applying a machine it released;
//   - know the machine records itself: it asks Machines.
package process
