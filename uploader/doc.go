// Package uploader owns the agent's side of the replication stream: a TLS
// 1.3 client with the machine's certificate for the process server's API
// (docs/protocol.md), and an Uploader per disk that sends the sealed
// segments of the disk (spool files or memory) in sequence order, up to
// DefaultWindow at once once the server acknowledged one (pipelined: the
// server makes them durable in order, api.HeaderSegmentBase), deletes
// each one only after the server has acknowledged it durable, and after
// any failure ends the sends under way and resumes from the first
// unacknowledged segment, one at a time, with a capped backoff.
//
// It must never delete a segment the server has not acknowledged, never
// start a segment before the ones below it, never let a send outlive a
// Reset, and never read a segment that is still open (only sealed ones,
// handed over by the journal writer or found complete at start).
package uploader
