//go:build !linux

package tracker

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// This system has no tracker yet: the Windows tracker is planned (issue
// 14) and will implement the same Tracker interface. Until then what the
// platform-free callers name exists here and fails with an error that
// wraps ErrNotSupported, so that a role that needs a tracker refuses to
// run instead of failing to compile.

func errNoTracker(what string) error {
	return fmt.Errorf("%s: %w (%s)", what, ErrNotSupported, runtime.GOOS)
}

// Open fails: there is no tracker on this system.
func Open(opts Options) (*Linux, error) { return nil, errNoTracker("open tracker") }

// CheckDevice fails: no device can be protected on this system.
func CheckDevice(path string) error {
	return &DeviceError{Path: path, Err: errNoTracker("track changes"),
		Remedy: "change tracking runs on Linux only for now; protect this machine's disks with the Linux agent"}
}

// TrackedAnywhere fails: there is no tracker on this system.
func TrackedAnywhere(path string) (bool, error) { return false, errNoTracker("find trackers") }

// BootID fails: the boot id is read where the Linux kernel keeps it.
func BootID() (string, error) { return "", errNoTracker("read boot id") }

var processStart = time.Now()

// MonotonicNow reads a monotonic clock. With no kernel program to share
// it with, it counts from the start of the process.
func MonotonicNow() time.Duration { return time.Since(processStart) }

// Linux is the Linux tracker; Open never returns one on this system, so
// none of its methods is reached.
type Linux struct{}

var _ Tracker = (*Linux)(nil)

func (t *Linux) Protect(path string) error   { return errNoTracker("protect " + path) }
func (t *Linux) Unprotect(path string) error { return errNoTracker("unprotect " + path) }
func (t *Linux) SetMode(path string, m Mode) error {
	return errNoTracker("set mode of " + path)
}
func (t *Linux) Events() <-chan []Event {
	ch := make(chan []Event)
	close(ch)
	return ch
}
func (t *Linux) Cut(ctx context.Context) (uint64, error) { return 0, errNoTracker("cut") }
func (t *Linux) Now() time.Duration                      { return MonotonicNow() }
func (t *Linux) Generation() (uint64, error)             { return 0, errNoTracker("read generation") }
func (t *Linux) Completed(gen uint64) (bool, error)      { return false, errNoTracker("read completion") }
func (t *Linux) Gap(path string) error                   { return errNoTracker("read gap of " + path) }
func (t *Linux) AckGap(path string)                      {}
func (t *Linux) Stats() (Stats, error)                   { return Stats{}, errNoTracker("read stats") }
func (t *Linux) Close() error                            { return nil }
func (t *Linux) Detach() error                           { return nil }
func (t *Linux) PinDir() string                          { return "" }
func (t *Linux) Adopted() bool                           { return false }
