// Package server is lifeboat-server: the configuration role (registration
// and the admin API, over HTTPS), the process role (the replication
// gateway of docs/protocol.md, over mutual TLS 1.3) and the master-target
// role (nothing to do yet). One Server runs the roles it is given on one
// data directory (see docs/server.md for its files).
//
// The process role receives a segment by streaming it into a temporary
// file of its cache, fsyncs it, verifies it whole with hrlfmt (every
// checksum, the trailer, and a header that names the certificate's machine,
// the URL's disk and sequence number), notes its cuts in the disk's cut log,
// renames it to its final name and fsyncs the directory; only then does it
// acknowledge it. One applier goroutine per disk applies the durable
// segments in order to target storage (a store.Store) and deletes each from
// the cache once applied; it retries with backoff.
//
// Restart: the next sequence number of a disk is derived from target
// storage's applied sequence and the contiguous cached segments after it,
// so a server killed at any moment loses no acknowledged segment, and a
// segment applied but not yet deleted from the cache is recognized and
// deleted (Apply is idempotent anyway).
//
// What it must never do:
//   - acknowledge a segment before it is durable and verified, or change
//     anything already accepted because of a bad request;
//   - let a machine write anything but its own disks: the machine is always
//     the client certificate's CommonName, never a name from a URL or body;
//   - let an agent certificate use the admin API, or the admin certificate
//     replicate;
//   - use a name from the network as a path element before api.ValidName
//     has accepted it.
package server
