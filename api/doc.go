// Package api holds the wire contract of docs/protocol.md as Go values: the
// JSON bodies of every request and answer of the configuration, process
// and admin endpoints, the URL paths, the name rule, and the HMAC proofs of
// registration. The server (package server), the agent's uploader, the
// registration client (package client) and the admin CLI
// (cmd/lifeboat) all use these types, so that the two ends cannot drift.
//
// It must never do I/O, and never import anything of the server's: an agent
// links it.
package api
