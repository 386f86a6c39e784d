// Package client is the Go side of docs/protocol.md for the callers of a
// Lifeboat server: Register (an agent's one-time registration, with the
// checks that make a forged server fail), Process (the replication
// endpoints, for the agent's uploader), Admin (the admin API, for the
// lifeboat CLI), and Local (a running agent's local API on its unix
// socket, for agentctl). Every request and answer is a type of package api.
//
// It must never send the passphrase itself, never trust a registration
// answer whose server proof or TLS peer chain does not check out, and never
// offer less than TLS 1.3 to a process server.
package client
