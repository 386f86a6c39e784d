// Package group is the group protocol of docs/protocol.md ("Coordinator ↔
// member", port 20004): how the coordinator of a replication group walks
// every member through the phases of a group point (docs/ARCHITECTURE.md
// §4), over mutual TLS, one api.GroupMessage per line each way.
//
//	prepare (pre-scripts, syncfs, drain) → freeze (all) → cut (all, same
//	point id) → thaw (all) → validate (each member's next round says
//	whether its frozen reads were untouched) → commit or abort
//
// It owns the connections (Conn, Dial, VerifyMember), the one broadcast of
// a phase to every member (Ask, Answers.Collect), the walks of the
// coordinator (Coordinate) and of a member (Member), and the error that
// names the phase and the members that failed (*PhaseError). What a phase
// does on this machine (scripts, freeze, tracker cut, the validating
// round) is the agent's, behind Local.
//
// It must never leave a member frozen past its own hard limit (FrozenMax)
// whatever the coordinator does, never commit a point unless every member
// validated its reads, and never accept a session from anyone but the
// group's coordinator (the agent checks that before Member).
package group
