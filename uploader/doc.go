// Package uploader owns the agent's side of the replication stream: a TLS
// 1.3 client with the machine's certificate for the process server's API
// (docs/protocol.md), and an Uploader per disk that sends the sealed
// segments of the disk's spool directory in sequence order, deletes each
// one only after the server has acknowledged it durable, and after any
// failure resumes from the first unacknowledged segment with a capped
// backoff.
//
// It must never delete a segment the server has not acknowledged, never
// send a segment out of order, and never read a segment that is still open
// (only sealed ones, handed over by the journal writer or found complete
// at start).
package uploader
