package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrStalled is the cause of a call a watchdog ended: the server took
// the connection but stopped reading or answering (a stopped or hung
// process).
var ErrStalled = errors.New("the server stopped reading or answering")

// watchdog cancels a call whose request body makes no progress for idle,
// or whose answer does not come within idle of the body's end. The first
// read must come within first (connect, handshake, 100 Continue).
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration

	mu    sync.Mutex
	timer *time.Timer
	cause error
}

func newWatchdog(ctx context.Context, first, idle time.Duration) *watchdog {
	w := &watchdog{idle: idle}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.timer = time.AfterFunc(first, w.fire)
	return w
}

func (w *watchdog) fire() {
	w.mu.Lock()
	w.cause = fmt.Errorf("%w: no progress in %s", ErrStalled, w.idle)
	w.mu.Unlock()
	w.cancel(w.cause)
}

// touch pushes the deadline idle into the future.
func (w *watchdog) touch() { w.timer.Reset(w.idle) }

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// err returns the watchdog's cause instead of err when it ended the call.
func (w *watchdog) err(err error) error {
	if err == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause != nil {
		return w.cause
	}
	return err
}

// reader returns r that touches the watchdog on every read.
func (w *watchdog) reader(r io.Reader) io.Reader { return &wdReader{w: w, r: r} }

type wdReader struct {
	w *watchdog
	r io.Reader
}

func (r *wdReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	// Every read restarts the clock; the last one (io.EOF) starts the
	// wait for the answer.
	r.w.touch()
	return n, err
}
