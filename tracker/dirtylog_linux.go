//go:build linux

package tracker

import (
	"fmt"
	"math"
	"math/bits"
	"path/filepath"

	"github.com/cilium/ebpf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// The change log (gen_dirty in tracker.bpf.c) is what lets an agent killed
// with SIGKILL be followed by one that reads only what was pending: per
// protected disk and per generation parity, one bit per granule of every
// region written. The agent persists the regions it still has to send at
// each cut N (every change of generations < N is in them) and then calls
// SettleChangeLog(N), which clears the other parity's half: it holds only
// changes of generations < N, since Cut returns only once no program that
// read an older generation still runs. What the log holds after a crash is
// therefore a superset of the changes of the generations the dead agent
// took from the rings but did not persist.

const (
	// changeLogWords is GD_WORDS of tracker.bpf.c: the words of one
	// disk's half.
	changeLogWords = 1024
	// changeLogMinShift: granules of at least 64 KiB (128 sectors);
	// larger disks get larger granules, so that 65536 cover them.
	changeLogMinShift = 7
)

// changeLogShift returns log2 of the granule in sectors for a disk of size
// bytes: the smallest granule of at least 64 KiB with which
// changeLogWords*64 granules cover the disk.
func changeLogShift(size int64) uint64 {
	sectors := uint64(max(size, 1)+511) / 512
	per := (sectors + changeLogWords*64 - 1) / (changeLogWords * 64)
	shift := uint64(bits.Len64(per - 1)) // ceil(log2(per)), 0 for per <= 1
	return max(shift, changeLogMinShift)
}

// changeLogDisk finds the stats slot and the whole disk's geometry of a
// protected path.
func (t *Linux) changeLogDisk(path string) (slot uint32, p protection, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, p, err
	}
	t.mu.Lock()
	pp, ok := t.byPath[abs]
	if ok {
		p = *pp
	}
	t.mu.Unlock()
	if !ok {
		return 0, p, fmt.Errorf("change log of %s: not protected", path)
	}
	var cfg lbbpf.TrackerLbDiskCfg
	if err := t.maps.ProtectedDisks.Lookup(p.dev, &cfg); err != nil {
		return 0, p, fmt.Errorf("change log of %s: %w", path, err)
	}
	if cfg.Slot >= maxDisks {
		return 0, p, fmt.Errorf("change log of %s: slot %d out of range", path, cfg.Slot)
	}
	return cfg.Slot, p, nil
}

// ArmChangeLog makes the kernel log every region written to the disk of a
// protected path. It reports whether the log already ran for that disk
// with the same granule (armed by an earlier process of this tracker):
// only then does it hold the changes before this call; otherwise it is
// cleared and starts now.
func (t *Linux) ArmChangeLog(path string) (bool, error) {
	slot, p, err := t.changeLogDisk(path)
	if err != nil {
		return false, err
	}
	want := changeLogShift(p.diskSize)
	var have uint64
	if err := t.maps.GenDirtyShift.Lookup(slot, &have); err != nil {
		return false, fmt.Errorf("change log of %s: %w", path, err)
	}
	if have == want {
		return true, nil
	}
	// Off while its words are cleared, then on with the new granule.
	if err := t.maps.GenDirtyShift.Update(slot, uint64(0), ebpf.UpdateAny); err != nil {
		return false, fmt.Errorf("change log of %s: %w", path, err)
	}
	for half := range uint32(2) {
		if err := t.clearHalf(slot, half); err != nil {
			return false, fmt.Errorf("change log of %s: %w", path, err)
		}
	}
	if err := t.maps.GenDirtyShift.Update(slot, want, ebpf.UpdateAny); err != nil {
		return false, fmt.Errorf("change log of %s: %w", path, err)
	}
	return false, nil
}

// readHalf returns the words of one half of a slot.
func (t *Linux) readHalf(slot, half uint32) ([]uint64, error) {
	base := (slot*2 + half) * changeLogWords
	keys := make([]uint32, changeLogWords)
	for i := range keys {
		keys[i] = base + uint32(i)
	}
	words := make([]uint64, changeLogWords)
	for i, k := range keys {
		// A batch lookup starts at the map's first key: one lookup a
		// word instead (only at a start after a crash).
		if err := t.maps.GenDirty.Lookup(k, &words[i]); err != nil {
			return nil, err
		}
	}
	return words, nil
}

// clearHalf zeroes one half of a slot, in one batch.
func (t *Linux) clearHalf(slot, half uint32) error {
	base := (slot*2 + half) * changeLogWords
	keys := make([]uint32, changeLogWords)
	for i := range keys {
		keys[i] = base + uint32(i)
	}
	_, err := t.maps.GenDirty.BatchUpdate(keys, make([]uint64, changeLogWords), nil)
	return err
}

// ChangeLog returns the regions of a protected path the log holds, in
// both halves, at whole-disk offsets within the path's range, as events
// report them.
func (t *Linux) ChangeLog(path string) ([]Range, error) {
	slot, p, err := t.changeLogDisk(path)
	if err != nil {
		return nil, err
	}
	var shift uint64
	if err := t.maps.GenDirtyShift.Lookup(slot, &shift); err != nil {
		return nil, fmt.Errorf("change log of %s: %w", path, err)
	}
	if shift == 0 {
		return nil, fmt.Errorf("change log of %s: not armed", path)
	}
	words := make([]uint64, changeLogWords)
	for half := range uint32(2) {
		w, err := t.readHalf(slot, half)
		if err != nil {
			return nil, fmt.Errorf("change log of %s: %w", path, err)
		}
		for i := range words {
			words[i] |= w[i]
		}
	}
	granule := int64(512) << shift
	var set Set
	last := int64(changeLogWords*64 - 1)
	for w, x := range words {
		for x != 0 {
			b := bits.TrailingZeros64(x)
			x &^= 1 << b
			g := int64(w)*64 + int64(b)
			off, n := g*granule, granule
			if g == last {
				// The kernel folds what lies beyond onto the last granule.
				n = math.MaxInt64 - off
			}
			set.Add(off, n)
		}
	}
	// Within the path's range, as the events are.
	end := p.end
	if p.diskSize > 0 {
		end = min(end, p.diskSize)
	}
	var out []Range
	for _, r := range set.Ranges() {
		a, b := max(r.Off, p.start), min(r.End(), end)
		if a < b {
			out = append(out, Range{Off: a, Len: b - a})
		}
	}
	return out, nil
}

// SettleChangeLog tells the log that a persisted set now covers every
// change of generations < gen, where gen is what the last Cut returned:
// the half of gen-1's parity is cleared for the given paths. If the
// tracker was cut again meanwhile, nothing is cleared
// (ErrGenerationMoved): that half may hold newer changes.
func (t *Linux) SettleChangeLog(paths []string, gen uint64) error {
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return fmt.Errorf("change log: read generation: %w", err)
	}
	if st.Gen != gen {
		return fmt.Errorf("%w (%d, settling %d)", ErrGenerationMoved, st.Gen, gen)
	}
	half := uint32((gen - 1) & 1)
	for _, path := range paths {
		slot, _, err := t.changeLogDisk(path)
		if err != nil {
			return err
		}
		if err := t.clearHalf(slot, half); err != nil {
			return fmt.Errorf("change log of %s: %w", path, err)
		}
	}
	return nil
}
