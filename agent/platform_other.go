//go:build !linux && !windows

package agent

import (
	"errors"
	"io"
	"time"
)

// other is the platform of an operating system without a tracker yet:
// the agent's core builds and its unit tests run, but it protects
// nothing.
type other struct{}

func defaultPlatform() platform { return other{} }
func defaultFreezer() freezer   { return other{} }

func (other) checkDisk(path string) error { return &notSupported{what: "protect " + path} }
func (other) checkStateDir(string, []string) error {
	return nil
}

func (other) openTracker(string, string) (Tracker, error) {
	return nil, &notSupported{what: "change tracker"}
}

func (other) openDisk(path string) (*blockDev, error) {
	return nil, &notSupported{what: "read " + path}
}

func (other) keepDirtySetOnly(Tracker, string, bool) error { return nil }
func (other) kernelRelease() string                        { return "" }
func (other) bootID() string                               { return "" }

func (other) filesystems([]string) ([]string, error) {
	return nil, &notSupported{what: "find the filesystems to freeze"}
}
func (other) syncFS([]string) {}
func (other) freeze([]string) (func() error, error) {
	return nil, &notSupported{what: "freeze filesystems"}
}
func (other) expediteRCU(warner) func() { return nil }

// notSupported is what a platform without a tracker answers.
type notSupported struct{ what string }

func (e *notSupported) Error() string { return e.what + ": " + ErrNotSupported.Error() }
func (e *notSupported) Unwrap() error { return ErrNotSupported }

// Hint tells the operator what to do.
func (e *notSupported) Hint() string {
	return "the agent protects disks on Linux only for now (the Windows tracker is issue 14); agentctl status and the other commands work here"
}

var clockStart = time.Now()

// monotonicNow is a monotonic clock in ns (here: since the process
// started; the tracker of this system will define its own).
func monotonicNow() int64 { return int64(time.Since(clockStart)) }

// readAt is one positioned read of the device.
func (b *blockDev) readAt(p []byte, off int64) (int, error) {
	k, err := b.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) && k > 0 {
		err = nil
	}
	return k, err
}

// newReadBuf returns a buffer of n bytes for reads.
func newReadBuf(n int) ([]byte, error) { return make([]byte, n), nil }
func dropReadBuf([]byte)               {}
func freeReadBuf([]byte)               {}
