// Package agent is the mobility agent: for each protected disk the state
// machine initial-sync → protected ↔ resync, the optimistic cut that
// builds crash-consistent points, reading changed blocks only after their
// writes completed, journaling them into segments streamed to the process
// server from bounded memory (or, as an option, a local spool; beyond the
// bound, metadata mode: changed regions only, read later; memory.go), and
// the local API that agentctl talks to.
//
// The cut (docs/ARCHITECTURE.md §4): a round starts with a tracker cut
// (generation G); everything changed before it is read once its writes
// completed; the next cut tells which changes were queued after G and
// before each read finished (CLOCK_MONOTONIC times: the kernel stamps each
// write with the last time the tracker handed it, never late, and each
// read's end is dated with tracker Now, so a write queued after a read
// ended does not count against it). A round none of whose reads was
// touched so, and which read everything pending, closes a point at G-1;
// its cut marker goes into every disk's journal. Under writes that keep
// landing on the blocks being read, a point may not converge: it is
// reported, retried every interval, and (for filesystems) an
// app-consistent point's freeze forces it.
//
// Layout:
//   - agent.go: configuration, start (New), the loop, and round, one named
//     method per step (cut, validate, settle the app and crash points,
//     wait for completions, spool, read, seal); rounds.go is its
//     bookkeeping, free of I/O.
//   - copy.go: the read pipeline of a round; state.go the state file.
//   - app.go: the freezing phases (prepare, freeze, cut, thaw, post) of
//     app-consistent and group points.
//   - group.go: this machine's side of group points; the protocol of port
//     20004 and the walks of coordinator and member are package
//     agent/group.
//   - api.go, status.go, report.go: the local API (types in api/agent.go)
//     and the status it serves; metrics.go the Prometheus view.
//   - platform.go: what the agent needs of the system, as interfaces:
//     Tracker (tracker.Tracker plus AckGap and Adopted; *tracker.Linux
//     implements it), platform (devices, tracker, kernel identity) and
//     freezer (syncfs, FIFREEZE). platform_linux.go and blockdev_linux.go
//     are Linux's; platform_other.go makes the rest build elsewhere and
//     fail with ErrNotSupported. Unit tests drive the agent on fakes of
//     all three (fake_test.go), without root.
//
// A restart after an orderly stop continues from the pinned tracker and
// the saved backlog. Anything else (crash, reboot, lost pins, changes the
// tracker could not record) resyncs: every block is hashed and compared
// with the replica's, and only blocks that differ are sent.
//
// The agent must never read a block before the write that dirtied it has
// completed, never keep its state or spool on a protected disk, and never
// list a point whose data is not all in the journal before its marker.
// Without a spool the agent writes no journal bytes on its host: segments
// live in memory until the server acknowledges them, so an orderly stop
// waits for that (else the next start resyncs), and a start asks the
// server where each journal stands.
package agent
