// Package sshx is Lifeboat's SSH client for push install: it connects with
// a private key and verifies the host key against a known_hosts file
// (golang.org/x/crypto/ssh/knownhosts), runs commands and copies files
// over the session's standard input.
//
// It owns the typed errors an operator meets when connecting (bad key,
// authentication refused, unknown or changed host key), each with the
// fingerprint and the command that fixes it.
//
// It must never accept a host key it cannot verify: an unknown key is
// accepted only when the operator named its fingerprint, and a changed
// key never. It never asks for or stores passwords.
package sshx
