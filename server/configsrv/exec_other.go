//go:build !unix

package configsrv

import "os/exec"

// ownProcessGroup does nothing here: cancellation kills the script only.
func ownProcessGroup(cmd *exec.Cmd) {}
