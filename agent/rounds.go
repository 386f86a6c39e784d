package agent

import (
	"cmp"
	"slices"
	"sort"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// rounds is the bookkeeping of the optimistic cut (docs/ARCHITECTURE.md
// §4), for all disks of a machine at once, free of any I/O so it can be
// tested alone.
//
// A round starts with a cut that returns generation G: every change of
// generations < G has been delivered (Observe), and folds them into the
// pending regions. The regions the previous round read are then checked:
// a read that overlaps a change issued after the previous cut (generation
// >= the previous G) may have seen that change, so it is tainted. The
// previous round is clean when nothing it read was tainted and it read
// everything that was pending; then the journal, up to the end of that
// round's records, holds the disks exactly as they were at the previous
// cut: a crash-consistent point. Tainted regions are pending again anyway,
// since the change that tainted them was folded in.
// Pending ranges closer than coalesceGap are read as one range of at most
// maxCoalesced bytes.
const (
	coalesceGap  = 32 << 10
	maxCoalesced = 1 << 20
)

type rounds struct {
	disks map[string]*roundDisk
	// last is the generation the previous round started with (0: none).
	last uint64
	// leftover: the previous round did not read all that was pending.
	leftover bool
}

// change is a reported change; ts is when the kernel saw it queued
// (CLOCK_MONOTONIC ns), 0 when unknown (a bitmap region).
type change struct {
	off, n int64
	ts     int64
}

// readChunk is a region the current round read, and when the read
// finished (CLOCK_MONOTONIC ns): a change queued after that cannot be in
// what was read.
type readChunk struct {
	off, end int64
	done     int64
}

type roundDisk struct {
	// oldest is a lower bound of the queue times of the changes in
	// pending, 0 if none is known. Take sweeps pending from a cursor, so a
	// change waits at most one sweep: once a sweep ends, every change still
	// pending came during it, and oldest becomes sweepOldest, the oldest
	// queue time folded since the sweep began.
	oldest      int64
	sweepOldest int64
	cursor      int64 // where the next Take starts
	pending     tracker.Set
	incoming    map[uint64][]change // by generation, not yet folded
	reads       []readChunk         // of the previous round, by offset
	// crash is what a start after a crash reads again (MarkRecovered),
	// until the first Begin removes from it the changes reported by the
	// tracker since, which are read anyway; reread is then what is left
	// (Reread), -1 before.
	crash  *tracker.Set
	reread int64
}

func newRounds(disks []string) *rounds {
	r := &rounds{disks: map[string]*roundDisk{}}
	for _, d := range disks {
		r.disks[d] = &roundDisk{incoming: map[uint64][]change{}, reread: -1}
	}
	return r
}

// Observe records a change reported by the tracker.
func (r *rounds) Observe(disk string, off, n int64, gen uint64, ts int64) {
	d := r.disks[disk]
	if d == nil || n <= 0 {
		return
	}
	d.incoming[gen] = append(d.incoming[gen], change{off, n, ts})
}

// Unfolded returns the bytes of changes observed but not folded into the
// pending regions yet (they will be at the next Begin).
func (r *rounds) Unfolded(disk string) int64 {
	d := r.disks[disk]
	if d == nil {
		return 0
	}
	var n int64
	for _, cs := range d.incoming {
		for _, c := range cs {
			n += c.n
		}
	}
	return n
}

// Oldest returns the queue time of the oldest change of a disk folded into
// pending regions and not yet taken, 0 if none; used to measure RPO lag.
func (r *rounds) Oldest(disk string) int64 {
	if d := r.disks[disk]; d != nil {
		return d.oldest
	}
	return 0
}

// MarkPending adds a region to read (initial sync, resync, a restored
// backlog, a read that failed).
func (r *rounds) MarkPending(disk string, off, n int64) {
	if d := r.disks[disk]; d != nil {
		d.pending.Add(off, n)
	}
}

// MarkRecovered adds to read what a start after a crash found left to do
// (crashlog.go): MarkPending of every range of s, which the first Begin
// also compares with the changes reported before it (Reread).
func (r *rounds) MarkRecovered(disk string, s *tracker.Set) {
	d := r.disks[disk]
	if d == nil {
		return
	}
	for _, rg := range s.Ranges() {
		d.pending.Add(rg.Off, rg.Len)
	}
	d.crash = s
}

// Reread returns, once, the bytes of what MarkRecovered added that no
// change reported before the first Begin covers: what a crash made the
// agent read again beyond the writes the tracker delivers anyway (the
// writes made while no agent ran, and those the dead one had not taken).
func (r *rounds) Reread(disk string) (int64, bool) {
	d := r.disks[disk]
	if d == nil || d.reread < 0 {
		return 0, false
	}
	n := d.reread
	d.reread = -1
	return n, true
}

// Begin starts a round after a cut returned gen. It reports whether the
// previous round was clean, and if so the generation its point closes
// (every change of generation <= pointGen is in the journal), and how many
// bytes of the previous round's reads were tainted.
func (r *rounds) Begin(gen uint64) (clean bool, pointGen uint64, tainted int64) {
	clean = r.last != 0 && !r.leftover
	for _, d := range r.disks {
		sort.Slice(d.reads, func(i, j int) bool { return d.reads[i].off < d.reads[j].off })
		for g, cs := range d.incoming {
			if g >= gen {
				continue
			}
			for _, c := range cs {
				if d.crash != nil {
					d.crash.Remove(c.off, c.n)
				}
				// Taint: a change issued since the last cut that may
				// have reached the disk before the block was read.
				if r.last != 0 && g >= r.last {
					if n := d.taint(c); n > 0 {
						tainted += n
						clean = false
					}
				}
				d.pending.Add(c.off, c.n)
				if c.ts > 0 && (d.oldest == 0 || c.ts < d.oldest) {
					d.oldest = c.ts
				}
				if c.ts > 0 && (d.sweepOldest == 0 || c.ts < d.sweepOldest) {
					d.sweepOldest = c.ts
				}
			}
			delete(d.incoming, g)
		}
		if d.crash != nil {
			d.reread, d.crash = d.crash.Bytes(), nil
		}
		d.reads = d.reads[:0]
	}
	if clean {
		pointGen = r.last - 1
	}
	r.last = gen
	return clean, pointGen, tainted
}

// taint returns the bytes of reads that c overlaps and that finished after
// c was queued.
func (d *roundDisk) taint(c change) int64 {
	end := c.off + c.n
	i := sort.Search(len(d.reads), func(i int) bool { return d.reads[i].end > c.off })
	var n int64
	for ; i < len(d.reads) && d.reads[i].off < end; i++ {
		if c.ts == 0 || c.ts < d.reads[i].done {
			n += min(end, d.reads[i].end) - max(c.off, d.reads[i].off)
		}
	}
	return n
}

// Take removes up to limit bytes of pending regions of a disk for this
// round to read, in ascending offsets from where the last Take stopped,
// wrapping around at the end: under a standing backlog every region waits
// at most one sweep of the disk, where lowest-offsets-first let the high
// offsets wait for ever. Report each read with ReadDone, or give back what
// was not read with MarkPending.
func (r *rounds) Take(disk string, limit int64) []tracker.Range {
	d := r.disks[disk]
	if d == nil {
		return nil
	}
	var out []tracker.Range
	// Only the ranges this round takes are visited, not the whole
	// (possibly huge and fragmented) pending set.
	visit := func(rg tracker.Range) bool {
		if limit <= 0 {
			return false
		}
		n := min(rg.Len, limit)
		// Ranges a small gap apart are read in one go: fewer, larger
		// reads (the gap is read too, harmlessly: it equals the replica).
		if k := len(out) - 1; k >= 0 && rg.Off >= out[k].End() && rg.Off-out[k].End() <= coalesceGap && rg.Off+n-out[k].Off <= maxCoalesced {
			limit -= rg.Off + n - out[k].End()
			out[k].Len = rg.Off + n - out[k].Off
			return true
		}
		out = append(out, tracker.Range{Off: rg.Off, Len: n})
		limit -= n
		return true
	}
	d.pending.AscendFrom(d.cursor, visit)
	if limit > 0 {
		// The sweep reached the end: what is still pending (behind the
		// cursor) came during the sweep.
		d.oldest, d.sweepOldest = d.sweepOldest, 0
		start := d.cursor
		d.cursor = 0
		d.pending.Ascend(func(rg tracker.Range) bool {
			return rg.Off < start && visit(rg)
		})
	}
	if len(out) > 0 {
		d.cursor = out[len(out)-1].End()
	}
	for _, rg := range out {
		d.pending.Remove(rg.Off, rg.Len)
	}
	if d.pending.Bytes() == 0 {
		d.oldest, d.sweepOldest, d.cursor = 0, 0, 0
	}
	return out
}

// ReadDone records that [off, off+n) was read, finishing at done
// (CLOCK_MONOTONIC ns).
func (r *rounds) ReadDone(disk string, off, n, done int64) {
	if d := r.disks[disk]; d != nil {
		d.reads = append(d.reads, readChunk{off, off + n, done})
	}
}

// Done closes the reads of the round: leftover records whether any disk
// still has pending regions, which keeps the next Begin from being clean.
func (r *rounds) Done() {
	r.leftover = false
	for _, d := range r.disks {
		if d.pending.Bytes() > 0 {
			r.leftover = true
		}
	}
}

// Pending returns the bytes still to read per disk.
func (r *rounds) Pending(disk string) int64 {
	if d := r.disks[disk]; d != nil {
		return d.pending.Bytes()
	}
	return 0
}

// PendingRanges returns everything of a disk not known to be in the
// journal as of a point: pending, changes not folded yet, and the reads of
// the round not validated yet (to persist a backlog), sorted and merged.
func (r *rounds) PendingRanges(disk string) []tracker.Range {
	return mergeRanges(r.appendPending(nil, disk))
}

// appendPending appends the ranges of PendingRanges to dst as they are,
// overlapping and unsorted: the caller merges them (mergeRanges) after
// letting go of the agent's lock.
func (r *rounds) appendPending(dst []tracker.Range, disk string) []tracker.Range {
	d := r.disks[disk]
	if d == nil {
		return dst
	}
	dst = r.appendUnread(dst, disk)
	for _, c := range d.reads {
		dst = append(dst, tracker.Range{Off: c.off, Len: c.end - c.off})
	}
	return dst
}

// appendUnread appends to dst, as appendPending does, the pending regions
// and the changes not folded yet, but not the reads of the round: what a
// crash must read again (crashlog.go), where a read counts until the
// segment that holds it is acknowledged, not until the next cut.
func (r *rounds) appendUnread(dst []tracker.Range, disk string) []tracker.Range {
	d := r.disks[disk]
	if d == nil {
		return dst
	}
	d.pending.Ascend(func(rg tracker.Range) bool {
		dst = append(dst, rg)
		return true
	})
	for _, cs := range d.incoming {
		for _, c := range cs {
			dst = append(dst, tracker.Range{Off: c.off, Len: c.n})
		}
	}
	return dst
}

// mergeRanges sorts rs in place and merges the ranges that overlap or
// touch, as tracker.Set does, in one pass: persisting a large, fragmented
// backlog (crashlog.go) no longer builds a tree of it every time.
func mergeRanges(rs []tracker.Range) []tracker.Range {
	slices.SortFunc(rs, func(a, b tracker.Range) int { return cmp.Compare(a.Off, b.Off) })
	out := rs[:0]
	for _, r := range rs {
		if r.Len <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && r.Off <= out[k].End() {
			out[k].Len = max(out[k].End(), r.End()) - out[k].Off
			continue
		}
		out = append(out, r)
	}
	return out
}
