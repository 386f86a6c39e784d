//go:build linux

package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// measure tracks writes to the disks for d with a tracker of its own. The
// tracker is not pinned (no PinDir): tracking ends when it is closed, also
// if agentctl is killed, so nothing is left in bpffs or the kernel. It
// runs beside an agent's tracker without touching it.
func measure(ctx context.Context, disks []string, d time.Duration) (Churn, error) {
	c := Churn{Disks: disks, Sizes: newSizes()}
	for _, p := range disks {
		if err := tracker.CheckDevice(p); err != nil {
			return c, err
		}
	}
	t, err := tracker.Open(tracker.Options{})
	if err != nil {
		return c, fmt.Errorf("start a tracker: %w (assess runs as root on Linux >= 5.17 with BTF)", err)
	}
	closed := false
	defer func() {
		if !closed {
			t.Close()
		}
	}()
	for _, p := range disks {
		if err := t.Protect(p); err != nil {
			return c, err
		}
	}
	onTracking()
	secs := int(d.Round(time.Second) / time.Second)
	c.PerSecond = make([]int64, secs)
	start := monotonic()
	slot := func(ns int64) int {
		if ns <= 0 {
			ns = monotonic()
		}
		return min(secs-1, max(0, int((ns-start)/int64(time.Second))))
	}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for batch := range t.Events() {
			mu.Lock()
			for _, e := range batch {
				switch e.Kind {
				case tracker.EventQueued:
					n := e.Extent.Length
					switch e.Extent.Op {
					case tracker.OpWrite, tracker.OpWriteZeroes:
						c.Writes++
						c.Bytes += n
						c.PerSecond[slot(int64(e.Time))] += n
						addSize(c.Sizes, n)
					case tracker.OpDiscard, tracker.OpSecureErase:
						c.Discards += n
					}
				case tracker.EventDirty:
					c.Bytes += e.Extent.Length
					c.Dirty += e.Extent.Length
					c.PerSecond[slot(0)] += e.Extent.Length
				}
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	stopped := false
	for !stopped {
		select {
		case <-tick.C:
			if _, err := t.Cut(ctx); err != nil && ctx.Err() == nil {
				return c, fmt.Errorf("tracker cut: %w", err)
			}
		case <-end.C:
			stopped = true
		case <-ctx.Done():
			stopped = true
		}
	}
	elapsed := time.Duration(monotonic() - start)
	// A last cut delivers everything queued so far, dirty regions included.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, cerr := t.Cut(cctx)
	cancel()
	closed = true
	if err := t.Close(); err != nil {
		return c, fmt.Errorf("close tracker: %w", err)
	}
	<-done
	if cerr != nil {
		return c, fmt.Errorf("final tracker cut: %w", cerr)
	}
	mu.Lock()
	defer mu.Unlock()
	c.Seconds = min(elapsed, d).Seconds()
	if ctx.Err() != nil {
		// Interrupted: only the seconds measured count.
		c.PerSecond = c.PerSecond[:max(1, min(secs, int(elapsed/time.Second)))]
		c.Seconds = elapsed.Seconds()
	}
	c.finish()
	return c, nil
}

// onTracking is called once the disks are tracked (a test hook).
var onTracking = func() {}

func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
