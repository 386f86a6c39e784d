//go:build linux

package configsrv

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprioBestEffort7 is ioprio_set's value of class best-effort (2),
// level 7: the lowest best-effort I/O priority.
const ioprioBestEffort7 = 2<<13 | 7

// lowPriority runs f on a thread of its own at nice 10 and the lowest
// best-effort I/O priority (boot.Priority), so that materializing the
// images of a boot test or drill does not slow replication. The thread
// ends with f: its priority never returns to the runtime's pool.
func lowPriority[T any](f func() (T, error)) (T, error) {
	type out struct {
		v   T
		err error
	}
	ch := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread exits with this goroutine.
		tid := unix.Gettid()
		// Best effort: a failure leaves the normal priority.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 10)
		_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(tid), ioprioBestEffort7)
		v, err := f()
		ch <- out{v, err}
	}()
	o := <-ch
	return o.v, o.err
}
