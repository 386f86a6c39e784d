//go:build linux

package tracker

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// pollInterval bounds how late an event is delivered when the kernel did
// not wake the reader.
const pollInterval = 5 * time.Millisecond

// enum lb_kind of tracker.bpf.c.
const (
	evQueued    = 1
	evCompleted = 2
	evCut       = 4
)

// readLoop turns the kernel's records into Events until Close: queue
// events from the per-CPU queue rings, completion events and cut markers
// from the ring buffer.
func (t *Linux) readLoop() {
	defer t.wg.Done()
	defer close(t.events)
	var rec ringbuf.Record
	r := recordReader{t: t, names: map[uint32][]*protection{}, namesGen: t.protGen.Load()}
	for {
		r.drainQueues()
		if len(t.batch) > 0 && t.ringEmpty() {
			t.flush() // nothing more waiting: deliver what was read
		}
		// Neither the queue rings nor (except for cut markers) the ring
		// buffer wake the reader: poll, and keep the queue clock within
		// a poll of the truth.
		t.Now()
		t.reader.SetDeadline(time.Now().Add(pollInterval))
		if err := t.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				t.flush()
				return
			}
			continue
		}
		raw := rec.RawSample
		if len(raw) < recMin {
			continue
		}
		switch raw[recKind] {
		case evCompleted:
			// Its queue event was published before the write was
			// submitted, so before this record: deliver that first.
			r.drainQueues()
			r.event(raw)
		case evCut:
			// The marker is written after the cut's quiescence: every
			// queue record of the generations before is published.
			r.drainQueues()
			gen := binary.LittleEndian.Uint64(raw[recGen:])
			t.drainBitmap(gen)
			t.send(Event{Kind: EventCut, Extent: Extent{Gen: gen}, Time: time.Duration(binary.LittleEndian.Uint64(raw[recTs:]))})
			t.flush() // delivered before Cut returns
			t.mu.Lock()
			if ch, ok := t.waiters[gen]; ok {
				close(ch)
				delete(t.waiters, gen)
			}
			t.mu.Unlock()
		}
	}
}

// recordReader is readLoop's: it decodes records and caches what names
// each device's events while protGen is unchanged.
type recordReader struct {
	t        *Linux
	names    map[uint32][]*protection
	namesGen uint64
}

// drainQueues delivers every record published in the per-CPU queue rings
// and gives their slots back to the kernel.
func (r *recordReader) drainQueues() {
	t := r.t
	mask := uint64(1)<<t.qshift - 1
	for cpu := 0; cpu < t.ncpu; cpu++ {
		head := &t.qpos[cpu*qposStride]
		tail := &t.qpos[cpu*qposStride+8]
		h, tl := atomic.LoadUint64(head), atomic.LoadUint64(tail)
		if h == tl {
			continue
		}
		base := cpu << t.qshift
		for ; tl != h; tl++ {
			at := (base + int(tl&mask)) * qrecSize
			r.event(t.qring[at : at+qrecSize])
		}
		atomic.StoreUint64(tail, h)
	}
}

// event delivers a queue or completion record as events of the protected
// paths it touches.
func (r *recordReader) event(raw []byte) {
	t := r.t
	id := binary.LittleEndian.Uint64(raw[recID:])
	sector := binary.LittleEndian.Uint64(raw[recSector:])
	ts := binary.LittleEndian.Uint64(raw[recTs:])
	gen := binary.LittleEndian.Uint64(raw[recGen:])
	bytes := binary.LittleEndian.Uint32(raw[recBytes:])
	dev := binary.LittleEndian.Uint32(raw[recDev:])
	k := EventQueued
	if raw[recKind] == evCompleted {
		k = EventCompleted
	}
	op := Op(raw[recOp])
	off, end := int64(sector)*512, int64(sector)*512+int64(bytes)
	if g := t.protGen.Load(); g != r.namesGen {
		clear(r.names)
		r.namesGen = g
	}
	named, ok := r.names[dev]
	if !ok {
		named = t.named(dev)
		r.names[dev] = named
	}
	for _, p := range named {
		a, b := max(off, p.start), min(end, p.end)
		if a >= b {
			continue
		}
		t.send(Event{Kind: k, ID: id, Time: time.Duration(ts),
			Extent: Extent{Disk: p.path, Offset: a, Length: b - a, Op: op, Gen: gen}})
	}
}

// named returns the protections that name the events of a disk: the real
// ones, or the placeholders if the disk has no real one yet.
func (t *Linux) named(dev uint32) []*protection {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := t.byDev[dev]
	var real []*protection
	for _, p := range all {
		if !p.restored {
			real = append(real, p)
		}
	}
	if len(real) == 0 {
		return all
	}
	return real
}

// send adds an event to the batch being filled; readLoop delivers it.
func (t *Linux) send(e Event) {
	if t.batch == nil {
		t.batch = make([]Event, 0, MaxBatch)
	}
	t.batch = append(t.batch, e)
	if len(t.batch) == MaxBatch {
		t.flush()
	}
}

// flush delivers the batch being filled. A delivered batch belongs to the
// consumer: the next one is a new slice.
func (t *Linux) flush() {
	if len(t.batch) == 0 {
		return
	}
	select {
	case t.events <- t.batch:
	case <-t.abort:
		t.abandoned.Add(uint64(len(t.batch)))
	}
	t.batch = nil
}

// drainBitmap collects the bitmap half of gen's parity: after the cut of
// gen has settled it holds only changes of generations <= gen.
func (t *Linux) drainBitmap(gen uint64) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return
	}
	for dev, cfg := range cfgs {
		base := int64(cfg.BmBase) + int64(gen&1)*int64(cfg.BmWords)
		words := make([]uint64, cfg.BmWords)
		any := false
		for i := range words {
			if atomic.LoadUint64(&t.dirty[base+int64(i)]) != 0 {
				words[i] = atomic.SwapUint64(&t.dirty[base+int64(i)], 0)
				any = true
			}
		}
		if !any {
			continue
		}
		size, err := wholeDiskSize(dev)
		if err != nil {
			size = int64(cfg.BmWords) * 64 << (cfg.BmShift + 9)
		}
		gran := int64(512) << cfg.BmShift
		exts := BitmapExtents("", words, 0, gran, size, gen)
		v, _ := t.regions.LoadOrStore(dev, new(atomic.Uint64))
		v.(*atomic.Uint64).Add(uint64(len(exts)))
		prots := t.named(dev)
		for _, e := range exts {
			for _, p := range prots {
				a, b := max(e.Offset, p.start), min(e.End(), p.end)
				if a >= b {
					continue
				}
				t.send(Event{Kind: EventDirty, Extent: Extent{Disk: p.path, Offset: a, Length: b - a, Op: OpDirty, Gen: gen}})
			}
		}
	}
}

// ringEmpty reports whether the ring buffer holds no record; a closed one
// counts as empty. AvailableBytes reads the mapping, which Close unmaps:
// both under readerMu, or a read after Close faults.
func (t *Linux) ringEmpty() bool {
	t.readerMu.RLock()
	defer t.readerMu.RUnlock()
	return t.readerClosed || t.reader.AvailableBytes() == 0
}
