// Package alerts is the server's alerts (docs/metrics.md): rpo-breached,
// heartbeat-lost, resyncing and cache-space-low, recomputed from the
// machine records, target storage and the process role's traffic every
// interval, never persisted. It owns the thresholds' defaults, the
// evaluation loop, the active and cleared alerts and GET /v1/alerts'
// answer; it reads the records and the points through Machines and
// Points, declared here, and is told of hashes requests and contacts by
// the composition (NoteHashes, NoteContact).
//
// What it must never do: change a machine record or target storage, or
// clear an alert because its conditions could not be read.
package alerts
