// Package machines owns the machine records of lifeboat-server:
// DataDir/machines/<name>.json, one per registered machine (written
// crash-safely through server/recdir; format in docs/server.md), and what
// the server knows of each machine in memory only (last contact, last
// prune). The configuration role changes them (registration, failover,
// policy, moves); the process and master-target roles read them through
// the interfaces they declare; a joined process server keeps the part the
// configuration server assigns it in memory (Touch).
//
// What it must never do:
//   - write a record that f refused, or a half-changed one;
//   - hand out a pointer into its map: Get returns a copy, and Update's
//     f works on one;
//   - take a name that api.ValidName refuses as a file name.
package machines
