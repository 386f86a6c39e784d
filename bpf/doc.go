// Package bpf holds the eBPF C sources of Lifeboat's Linux tracker, the
// minimal CO-RE kernel header they need (vmlinux.h, written by hand with
// preserve_access_index, so it works on any kernel with BTF), and the
// objects and Go bindings bpf2go generates from them.
//
// The generated tracker_bpfel.go and tracker_bpfel.o are committed so that
// a plain `go build` needs no clang; `make generate` rebuilds them and CI
// checks they match the sources. Nothing here decides policy: loading,
// pinning and reading the maps belong to package tracker.
//
// The C side must never block or allocate, and must never drop a change
// silently: what the ring buffer cannot take is marked in the dirty bitmap,
// and what the bitmap cannot take is counted as lost.
package bpf
