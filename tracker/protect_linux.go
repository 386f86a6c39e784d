//go:build linux

package tracker

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"path/filepath"
	"sort"
	"sync/atomic"

	"github.com/cilium/ebpf"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// maxDisks is MAX_DISKS of tracker.bpf.c: the entries of protected_disks
// and disk_stats.
const maxDisks = 64

// restoreProtections learns the disks protected by an adopted tracker, so
// their events have a name before Protect is called again.
func (t *Linux) restoreProtections() error {
	var (
		dev uint32
		cfg lbbpf.TrackerLbDiskCfg
	)
	it := t.maps.ProtectedDisks.Iterate()
	for it.Next(&dev, &cfg) {
		end := int64(math.MaxInt64)
		if cfg.End != math.MaxUint64 {
			end = int64(cfg.End) * 512
		}
		p := &protection{dev: dev, start: int64(cfg.Start) * 512, end: end, restored: true}
		p.path = placeholderPath(dev, p.start, p.end)
		if size, err := wholeDiskSize(dev); err == nil {
			p.diskSize = size
		}
		t.byPath[p.path] = p
		t.byDev[dev] = append(t.byDev[dev], p)
		t.protGen.Add(1)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read protected disks: %w", err)
	}
	return nil
}

// Protect starts tracking the block device at path.
func (t *Linux) Protect(path string) error {
	info, err := inspectDevice(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.protGen.Add(1)
	if old, ok := t.byPath[info.path]; ok && old.dev == info.dev && old.start == info.start && old.end == info.end {
		// Protected twice, or adopted from pins under the same name.
		old.restored = false
		return t.recordStateLocked()
	}
	for _, p := range t.byDev[info.dev] {
		if !p.restored && p.start < info.end && info.start < p.end {
			return &DeviceError{Path: path, Err: fmt.Errorf("overlaps %s, which is already protected", p.path),
				Remedy: "protect either the whole disk or its partitions, not both"}
		}
	}
	if err := t.putDiskLocked(info.dev, append(t.byDev[info.dev], info)); err != nil {
		return &DeviceError{Path: path, Err: err}
	}
	t.byPath[info.path] = info
	t.byDev[info.dev] = append(t.byDev[info.dev], info)
	if t.prior != nil && !t.adopted {
		for _, d := range t.prior.Disks {
			if d != info.path {
				continue
			}
			reason := "tracker state lost while the machine was running"
			if t.prior.BootID != formatBootID(t.bootID) {
				reason = "machine rebooted"
			} else if t.takeover != "" {
				reason = t.takeover
			}
			t.gaps[info.path] = &ResyncRequiredError{Disk: info.path, Reason: reason}
		}
	}
	return t.recordStateLocked()
}

// putDiskLocked writes the kernel entry of a whole disk covering prots.
func (t *Linux) putDiskLocked(dev uint32, prots []*protection) error {
	var cfg lbbpf.TrackerLbDiskCfg
	exists := t.maps.ProtectedDisks.Lookup(dev, &cfg) == nil
	start, end := prots[0].start, prots[0].end
	for _, p := range prots[1:] {
		start, end = min(start, p.start), max(end, p.end)
	}
	cfg.Start, cfg.End = uint64(start/512), uint64((end+511)/512)
	if end == math.MaxInt64 {
		// A whole disk: writes past its size at protect time (it grew)
		// are tracked too.
		cfg.End = math.MaxUint64
	}
	if !exists {
		slot, err := t.freeSlot()
		if err != nil {
			return err
		}
		words := BitmapWords(prots[0].diskSize, t.opts.BitmapGranularity)
		base, err := t.allocBitmap(2 * words)
		if err != nil {
			return err
		}
		// Clear what an earlier owner of these words may have left.
		for i := base; i < base+2*words; i++ {
			atomic.StoreUint64(&t.dirty[i], 0)
		}
		zero := make([]lbbpf.TrackerLbDiskStats, ebpf.MustPossibleCPU())
		if err := t.maps.DiskStats.Update(slot, zero, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("reset stats: %w", err)
		}
		cfg.Slot = slot
		cfg.Mode = uint32(ModeMetadata)
		cfg.BmBase = uint64(base)
		cfg.BmWords = uint64(words)
		cfg.BmShift = uint32(log2(t.opts.BitmapGranularity / 512))
	}
	if err := t.maps.ProtectedDisks.Update(dev, &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("add to protected disks: %w", err)
	}
	return t.syncFastLocked()
}

func (t *Linux) diskConfigs() (map[uint32]lbbpf.TrackerLbDiskCfg, error) {
	out := map[uint32]lbbpf.TrackerLbDiskCfg{}
	var (
		dev uint32
		cfg lbbpf.TrackerLbDiskCfg
	)
	it := t.maps.ProtectedDisks.Iterate()
	for it.Next(&dev, &cfg) {
		out[dev] = cfg
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read protected disks: %w", err)
	}
	return out, nil
}

func (t *Linux) freeSlot() (uint32, error) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return 0, err
	}
	used := map[uint32]bool{}
	for _, c := range cfgs {
		used[c.Slot] = true
	}
	for s := uint32(0); s < maxDisks; s++ {
		if !used[s] {
			return s, nil
		}
	}
	return 0, fmt.Errorf("already %d disks protected", maxDisks)
}

// allocBitmap finds n free words in the shared bitmap (first fit).
func (t *Linux) allocBitmap(n int64) (int64, error) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return 0, err
	}
	type span struct{ a, b int64 }
	var used []span
	for _, c := range cfgs {
		used = append(used, span{int64(c.BmBase), int64(c.BmBase + 2*c.BmWords)})
	}
	sort.Slice(used, func(i, j int) bool { return used[i].a < used[j].a })
	at := int64(0)
	for _, u := range used {
		if u.a-at >= n {
			break
		}
		at = max(at, u.b)
	}
	if at+n > int64(len(t.dirty)) {
		return 0, fmt.Errorf("dirty bitmap full: the disk needs %d words, %d of %d are free; "+
			"raise the bitmap size or the granularity", n, int64(len(t.dirty))-at, len(t.dirty))
	}
	return at, nil
}

// Unprotect stops tracking the device at path.
func (t *Linux) Unprotect(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.protGen.Add(1)
	p, ok := t.byPath[abs]
	if !ok {
		return fmt.Errorf("unprotect %s: not protected", path)
	}
	var rest []*protection
	real := false
	for _, q := range t.byDev[p.dev] {
		if q != p {
			rest = append(rest, q)
			real = real || !q.restored
		}
	}
	if !real {
		// Only placeholders of an earlier process are left: they go too.
		for _, q := range rest {
			delete(t.byPath, q.path)
		}
		rest = nil
	}
	if len(rest) == 0 {
		if err := t.maps.ProtectedDisks.Delete(p.dev); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		if err := t.syncFastLocked(); err != nil {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		delete(t.byDev, p.dev)
	} else {
		if err := t.putDiskLocked(p.dev, rest); err != nil {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		t.byDev[p.dev] = rest
	}
	delete(t.byPath, abs)
	delete(t.gaps, abs)
	return t.recordStateLocked()
}

// SetMode switches a protected disk between metadata and bitmap mode.
func (t *Linux) SetMode(path string, m Mode) error {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byPath[abs]
	if !ok {
		return fmt.Errorf("set mode of %s: not protected", path)
	}
	var cfg lbbpf.TrackerLbDiskCfg
	if err := t.maps.ProtectedDisks.Lookup(p.dev, &cfg); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	cfg.Mode = uint32(m)
	if err := t.maps.ProtectedDisks.Update(p.dev, &cfg, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if err := t.syncFastLocked(); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	return nil
}

// diskFastIndex is the slot of a dev_t in disk_fast (as in tracker.bpf.c).
func diskFastIndex(dev uint32, slots int) int {
	return int(uint64(dev*0x9E3779B1) >> (32 - bits.TrailingZeros(uint(slots))))
}

// syncFastLocked makes disk_fast mirror protected_disks, which has just
// changed: a disk gone leaves its slot (dev cleared first), a disk new to
// a free slot is written there before its dev, a disk already in its slot
// gets its changed fields one atomic store each, and a disk whose slot
// another disk holds is looked up in protected_disks (its slot's spill set).
// A program that matched a disk just removed may read the fields of the
// next disk written to that slot: at worst it marks a range of that disk
// dirty that did not change (more is copied, nothing is missed).
func (t *Linux) syncFastLocked() error {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return err
	}
	for i := range t.diskFast {
		f := &t.diskFast[i]
		if d := atomic.LoadUint32(&f.Dev); d != 0 {
			if _, ok := cfgs[d]; !ok || diskFastIndex(d, len(t.diskFast)) != i {
				atomic.StoreUint32(&f.Dev, 0)
			}
		}
	}
	devs := make([]uint32, 0, len(cfgs))
	for d := range cfgs {
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i] < devs[j] })
	spill := make([]bool, len(t.diskFast))
	for _, d := range devs {
		c := cfgs[d]
		i := diskFastIndex(d, len(t.diskFast))
		f := &t.diskFast[i]
		switch atomic.LoadUint32(&f.Dev) {
		case d:
			atomic.StoreUint64(&f.Cfg.Start, c.Start)
			atomic.StoreUint64(&f.Cfg.End, c.End)
			atomic.StoreUint32(&f.Cfg.Mode, c.Mode)
			if f.Cfg.Slot != c.Slot || f.Cfg.BmBase != c.BmBase || f.Cfg.BmWords != c.BmWords || f.Cfg.BmShift != c.BmShift {
				// Only a new disk gets a new stats slot or bitmap.
				atomic.StoreUint32(&f.Dev, 0)
				f.Cfg = c
				atomic.StoreUint32(&f.Dev, d)
			}
		case 0:
			f.Cfg = c
			atomic.StoreUint32(&f.Dev, d)
		default:
			spill[i] = true
		}
	}
	for i, sp := range spill {
		var v uint32
		if sp {
			v = 1
		}
		if atomic.LoadUint32(&t.diskFast[i].Spill) != v {
			atomic.StoreUint32(&t.diskFast[i].Spill, v)
		}
	}
	return nil
}

func log2(v int64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}
