//go:build !linux

package store

import (
	"errors"
	"fmt"
	"os"
)

// ProbeReflink reports false: this platform's build does not share
// extents between files.
func ProbeReflink(dir string) (bool, error) {
	if _, err := os.Stat(dir); err != nil {
		return false, fmt.Errorf("reflink probe: %w", err)
	}
	return false, nil
}

// errNoReflink is wrapped by cloneFile's error.
var errNoReflink = errors.New("the file system cannot share extents (no reflink)")

// cloneFile always fails with errNoReflink here.
func cloneFile(dst, src *os.File) error {
	return fmt.Errorf("clone %s: %w", src.Name(), errNoReflink)
}
