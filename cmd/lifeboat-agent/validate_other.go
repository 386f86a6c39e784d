//go:build !linux

package main

// checkNotTrackedElsewhere has nothing to check where no eBPF tracker
// runs.
func checkNotTrackedElsewhere(disk, pinDir string) error { return nil }
