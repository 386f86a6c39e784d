//go:build !linux

package recovery

import (
	"context"
	"errors"
	"runtime"
)

// ErrFailbackUnsupported is why a failback cannot run on this system: it
// tracks the recovered disks with the Linux eBPF tracker.
var ErrFailbackUnsupported = errors.New("failback needs Linux (" + runtime.GOOS + ")")

// failbackLinuxHint is the remedy of ErrFailbackUnsupported.
const failbackLinuxHint = "the master-target role needs Linux: run it on a Linux server"

// Failback is a failback session; on this system none can start.
type Failback struct{}

// StartFailback refuses: failback needs Linux.
func StartFailback(FailbackConfig) (*Failback, error) {
	return nil, &FailbackError{Msg: "cannot fail back on " + runtime.GOOS, Remedy: failbackLinuxHint, Err: ErrFailbackUnsupported}
}

// Complete does nothing: no session runs.
func (f *Failback) Complete() {}

// Status is empty: no session runs.
func (f *Failback) Status() FailbackStatus {
	return FailbackStatus{Phase: PhaseFailed, Err: ErrFailbackUnsupported}
}

// Run refuses: failback needs Linux.
func (f *Failback) Run(context.Context) error { return ErrFailbackUnsupported }

// Close does nothing: no session runs.
func (f *Failback) Close() error { return nil }

// LoopOf refuses: loop devices are Linux's.
func LoopOf(string) (string, error) { return "", ErrFailbackUnsupported }
