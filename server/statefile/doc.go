// Package statefile owns DATA/server.json, the file a running
// lifeboat-server writes once its listeners are bound and removes at
// shutdown, so that the lifeboat CLI on the same host finds it (its
// format: docs/ARCHITECTURE.md §5, docs/server.md). It is a package of its
// own so that the CLI can read the file without linking the server and
// what the server links (recovery, the tracker, the BPF object).
//
// What it must never do: import another package of the server, or
// anything that runs on a target (recovery, tracker, bpf).
package statefile
