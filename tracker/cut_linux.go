//go:build linux

package tracker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

const (
	// genSlots is GEN_SLOTS of tracker.bpf.c: the entries of gen_inflight.
	genSlots = 1024

	// enum lb_cut_op of tracker.bpf.c.
	cutBump  = 1
	cutMark  = 2
	cutFlags = 3
	cutReap  = 4
)

// Cut ends the current generation; see Tracker.
func (t *Linux) Cut(ctx context.Context) (uint64, error) {
	if t.closed.Load() {
		return 0, errors.New("cut: tracker closed")
	}
	t.start()
	t.cutMu.Lock()
	defer t.cutMu.Unlock()
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return 0, fmt.Errorf("cut: read tracker state: %w", err)
	}
	gen := st.Gen
	if st.MarkedNext < gen {
		// An earlier cut (maybe of a process that died) bumped the
		// generation but did not put its marker in: finish it first, or
		// the bitmap half of that generation's parity would be drained
		// only one cut later, under a later generation.
		if err := t.quiesce(ctx); err != nil {
			return 0, err
		}
		if err := t.mark(ctx, gen-1); err != nil {
			return 0, err
		}
	}
	var perCPU []uint64
	if err := t.maps.GenInflight.Lookup(uint32((gen+1)%genSlots), &perCPU); err != nil {
		return 0, fmt.Errorf("cut: read in-flight count: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	if n != 0 {
		return 0, fmt.Errorf("cut: %d requests of generation %d are still in flight after %d cuts; wait for them", n, gen+1-genSlots, genSlots)
	}
	args := lbbpf.TrackerLbCutArgs{Op: cutBump}
	if err := t.runCut(&args); err != nil {
		return 0, err
	}
	next := args.Gen
	if err := t.quiesce(ctx); err != nil {
		return 0, err
	}
	ch := make(chan struct{})
	t.mu.Lock()
	t.waiters[next-1] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiters, next-1)
		t.mu.Unlock()
	}()
	if err := t.mark(ctx, next-1); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return next, nil
	case <-t.done:
		return 0, errors.New("cut: tracker closed")
	case <-ctx.Done():
		return 0, fmt.Errorf("cut: wait for events to drain: %w", ctx.Err())
	}
}

var errRingFull = errors.New("ring buffer full")

// mark puts the CUT marker of gen into the ring buffer, waiting for room.
func (t *Linux) mark(ctx context.Context, gen uint64) error {
	args := lbbpf.TrackerLbCutArgs{Op: cutMark, Gen: gen}
	for {
		err := t.runCut(&args)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRingFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cut: ring buffer full: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// quiesce returns once no run of the queue program that may have read the
// generation before the bump is still running: every CPU whose busy
// counter was odd (inside the window) when read after the bump has moved
// on. The bump is a fully ordered atomic, so a run that read the old
// generation had made its counter odd before this read (bpf/tracker.bpf.c).
// A run takes about a microsecond; this replaces an RCU grace period
// (membarrier), which took 11–17 ms here.
func (t *Linux) quiesce(ctx context.Context) error {
	var snap, cur []lbbpf.TrackerLbCpuLocal
	if err := t.maps.CpuLocal.Lookup(uint32(0), &snap); err != nil {
		return fmt.Errorf("cut: read busy counters: %w", err)
	}
	var busy []int
	for c, v := range snap {
		if v.Busy&1 == 1 {
			busy = append(busy, c)
		}
	}
	for i := 0; len(busy) > 0; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			select {
			case <-ctx.Done():
				return fmt.Errorf("cut: wait for %d CPUs to leave the tracker: %w", len(busy), ctx.Err())
			case <-time.After(50 * time.Microsecond):
			}
		}
		if err := t.maps.CpuLocal.Lookup(uint32(0), &cur); err != nil {
			return fmt.Errorf("cut: read busy counters: %w", err)
		}
		busy = slices.DeleteFunc(busy, func(c int) bool { return cur[c].Busy != snap[c].Busy })
	}
	return nil
}

func (t *Linux) runCut(a *lbbpf.TrackerLbCutArgs) error {
	ret, err := t.cut.Run(&ebpf.RunOptions{Context: a, ContextOut: a})
	if err != nil {
		return fmt.Errorf("run cut program: %w", err)
	}
	switch ret {
	case 0:
		return nil
	case 2:
		return errRingFull
	default:
		return fmt.Errorf("cut program returned %d", ret)
	}
}

// Generation returns the current generation.
func (t *Linux) Generation() (uint64, error) {
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return 0, fmt.Errorf("read tracker state: %w", err)
	}
	return st.Gen, nil
}

// Completed reports whether every request of generations <= gen completed.
func (t *Linux) Completed(gen uint64) (bool, error) {
	cur, err := t.Generation()
	if err != nil {
		return false, err
	}
	if gen > cur {
		return false, fmt.Errorf("generation %d is not cut yet (current %d)", gen, cur)
	}
	counts, err := t.genCounts()
	if err != nil {
		return false, err
	}
	lo := uint64(0)
	if cur >= genSlots {
		lo = cur - genSlots + 1
	}
	for g := lo; g <= gen; g++ {
		if counts[g%genSlots] != 0 {
			return false, nil
		}
	}
	var untracked uint64
	cfgs, err := t.diskConfigs()
	if err != nil {
		return false, err
	}
	for dev := range cfgs {
		st, err := t.diskStats(dev)
		if err != nil {
			return false, err
		}
		untracked += st.untracked
	}
	if untracked > 0 {
		return false, fmt.Errorf("%d requests were issued while the in-flight table was full: %w", untracked, ErrCompletionUnknown)
	}
	return true, nil
}

// genCounts reads the in-flight request count of every generation slot,
// summed over the CPUs (bpf/tracker.bpf.c). For generations already cut,
// every increment happened before the read, so a sum of zero means none
// of their requests is in flight.
func (t *Linux) genCounts() ([]uint64, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	perCPU := make([]uint64, genSlots*ncpu)
	keys := make([]uint32, genSlots)
	for i := range keys {
		keys[i] = uint32(i)
	}
	var cursor ebpf.MapBatchCursor
	n, err := t.maps.GenInflight.BatchLookup(&cursor, keys, perCPU, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read in-flight counts: %w", err)
	}
	if n != genSlots {
		return nil, fmt.Errorf("read in-flight counts: got %d of %d", n, genSlots)
	}
	counts := make([]uint64, genSlots)
	for i := range counts {
		for _, v := range perCPU[i*ncpu : (i+1)*ncpu] {
			counts[i] += v
		}
	}
	return counts, nil
}
