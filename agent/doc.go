// Package agent is the mobility agent: for each protected disk the state
// machine initial-sync → protected ↔ resync, the optimistic cut that
// builds crash-consistent points (rounds.go), reading changed blocks with
// O_DIRECT only after their writes completed, journaling them into the
// bounded local spool, and the local API that agentctl talks to.
//
// The cut (DESIGN.md §4): a round starts with a tracker cut (generation
// G); everything changed before it is read once its writes completed; the
// next cut tells which changes were queued after G and before each read
// finished (CLOCK_MONOTONIC times: the kernel stamps each write with the
// last time the tracker handed it, never late, and each read's end is
// dated with tracker Now, so a write queued after a read ended does not
// count against it). A round none of whose
// reads was touched so, and which read everything pending, closes a point
// at G-1; its cut marker goes into every disk's journal. Under writes
// that keep landing on the blocks being read, a point may not converge:
// it is reported, retried every interval, and (for filesystems) an
// app-consistent point's freeze forces it.
//
// App-consistent and group points walk the same freezing phases
// (app_linux.go: prepare, freeze, cut, thaw, post); a group point's
// coordinator drives every member of a replication group through them over
// mutual TLS on port 20004 (group_linux.go), and a member never stays
// frozen past its own hard limit whatever the coordinator does.
//
// A restart after an orderly stop continues from the pinned tracker and
// the saved backlog. Anything else (crash, reboot, lost pins, changes the
// tracker could not record) resyncs: every block is hashed and compared
// with the replica's, and only blocks that differ are sent.
//
// The agent must never read a block before the write that dirtied it has
// completed, never keep its state or spool on a protected disk, and never
// list a point whose data is not all in the journal before its marker.
package agent
