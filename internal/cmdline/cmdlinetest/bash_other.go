//go:build !linux

package cmdlinetest

import "testing"

// checkBash runs on Linux only (bash and bash-completion).
func checkBash(*testing.T, Spec) {}
