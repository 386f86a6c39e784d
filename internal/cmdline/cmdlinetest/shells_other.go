//go:build !linux

package cmdlinetest

import "testing"

// checkShells runs on Linux only (bash, fish, zsh).
func checkShells(*testing.T, Spec) {}
