package tracker

import (
	"cmp"
	"math"
	"slices"

	"github.com/google/btree"
)

// Range is the byte range [Off, Off+Len).
type Range struct {
	Off, Len int64
}

// End is the first byte after the range.
func (r Range) End() int64 { return r.Off + r.Len }

// validRange reports whether [off, off+n) is a range of non-negative byte
// offsets whose end fits in an int64.
func validRange(off, n int64) bool {
	return off >= 0 && n >= 0 && n <= math.MaxInt64-off
}

// Set is a set of byte ranges, kept sorted and merged: no two of its ranges
// overlap or touch. The zero Set is empty and ready to use. A Set is not
// safe for concurrent use, and must not be copied once used (it holds a
// tree).
//
// Arguments that describe no valid range (a negative offset or length, or
// an end beyond math.MaxInt64) leave the set unchanged; they do not panic.
//
// The ranges live in a B-tree ordered by offset, so Remove, Covers and
// Overlaps cost O(log n + k) for k ranges touched, however fragmented the
// set is: a sorted slice had to move its tail on every insertion, which
// dominated the agent's CPU under random small writes. Add only appends:
// added ranges are sorted and merged with each other, then with the tree
// (settle), before anything reads the set or once as many have piled up as
// the tree holds (at least settleAt). Sorting a batch and merging two
// sorted lists costs a fraction of inserting the ranges one by one, and
// the batch is never larger than the set, so memory stays within twice
// the set's.
type Set struct {
	t     *btree.BTreeG[Range]
	bytes int64   // bytes in t
	added []Range // added since the last settle: not in t, not in bytes
}

// settleAt is the fewest ranges Add keeps before merging them into the
// tree.
const settleAt = 4096

func rangeLess(a, b Range) bool { return a.Off < b.Off }

func (s *Set) tree() *btree.BTreeG[Range] {
	if s.t == nil {
		s.t = btree.NewG(32, rangeLess)
	}
	return s.t
}

// floor returns the range with the greatest offset <= off.
func (s *Set) floor(off int64) (Range, bool) {
	var out Range
	found := false
	s.tree().DescendLessOrEqual(Range{Off: off}, func(r Range) bool {
		out, found = r, true
		return false
	})
	return out, found
}

// Add adds the bytes [off, off+n), merging them with the ranges they
// overlap or touch. A zero length is a no-op, and so are invalid arguments.
func (s *Set) Add(off, n int64) {
	if n == 0 || !validRange(off, n) {
		return
	}
	s.added = append(s.added, Range{off, n})
	if len(s.added) >= settleAt && (s.t == nil || len(s.added) >= s.t.Len()) {
		s.settle()
	}
}

// settle merges the ranges Add kept into the tree.
func (s *Set) settle() {
	if len(s.added) == 0 {
		return
	}
	a := s.added
	slices.SortFunc(a, func(x, y Range) int { return cmp.Compare(x.Off, y.Off) })
	w := 0
	for _, r := range a {
		if w > 0 && a[w-1].End() >= r.Off {
			a[w-1].Len = max(a[w-1].End(), r.End()) - a[w-1].Off
			continue
		}
		a[w] = r
		w++
	}
	a = a[:w]
	t := s.tree()
	switch {
	case t.Len() == 0:
		// Sorted, merged and apart: they go in as they are.
		for _, r := range a {
			t.ReplaceOrInsert(r)
			s.bytes += r.Len
		}
	case len(a) < t.Len()/8:
		// A few ranges into a large set: one by one.
		for _, r := range a {
			s.insert(r.Off, r.Len)
		}
	default:
		// Merge the two sorted lists and rebuild the tree in order.
		old := make([]Range, 0, t.Len())
		t.Ascend(func(r Range) bool {
			old = append(old, r)
			return true
		})
		t.Clear(true)
		s.bytes = 0
		var cur Range
		push := func(r Range) {
			switch {
			case cur.Len == 0:
				cur = r
			case cur.End() >= r.Off:
				cur.Len = max(cur.End(), r.End()) - cur.Off
			default:
				t.ReplaceOrInsert(cur)
				s.bytes += cur.Len
				cur = r
			}
		}
		i, j := 0, 0
		for i < len(old) || j < len(a) {
			if j == len(a) || (i < len(old) && old[i].Off <= a[j].Off) {
				push(old[i])
				i++
			} else {
				push(a[j])
				j++
			}
		}
		t.ReplaceOrInsert(cur)
		s.bytes += cur.Len
	}
	s.added = s.added[:0]
}

// insert adds a valid, non-empty range to the tree, merging it with the
// ranges it overlaps or touches.
func (s *Set) insert(off, n int64) {
	t := s.tree()
	end := off + n
	if r, ok := s.floor(off); ok && r.End() >= off {
		if r.End() >= end {
			return // already in
		}
		off = r.Off
		t.Delete(r)
		s.bytes -= r.Len
	}
	// Ranges that start in (off, end] overlap or touch.
	var merged []Range
	t.AscendGreaterOrEqual(Range{Off: off + 1}, func(r Range) bool {
		if r.Off > end {
			return false
		}
		merged = append(merged, r)
		return true
	})
	for _, r := range merged {
		t.Delete(r)
		s.bytes -= r.Len
		end = max(end, r.End())
	}
	t.ReplaceOrInsert(Range{off, end - off})
	s.bytes += end - off
}

// Remove removes the bytes [off, off+n) from the set, cutting or splitting
// the ranges they overlap. A zero length is a no-op, and so are invalid
// arguments.
func (s *Set) Remove(off, n int64) {
	s.settle()
	if n == 0 || !validRange(off, n) || s.t == nil {
		return
	}
	t := s.t
	end := off + n
	var hit []Range
	if r, ok := s.floor(off); ok && r.End() > off {
		hit = append(hit, r)
	}
	t.AscendGreaterOrEqual(Range{Off: off + 1}, func(r Range) bool {
		if r.Off >= end {
			return false
		}
		hit = append(hit, r)
		return true
	})
	for _, r := range hit {
		t.Delete(r)
		s.bytes -= r.Len
		if r.Off < off {
			t.ReplaceOrInsert(Range{r.Off, off - r.Off})
			s.bytes += off - r.Off
		}
		if r.End() > end {
			t.ReplaceOrInsert(Range{end, r.End() - end})
			s.bytes += r.End() - end
		}
	}
}

// Ranges returns a copy of the ranges of the set in ascending order.
func (s *Set) Ranges() []Range {
	s.settle()
	if s.t == nil {
		return nil
	}
	out := make([]Range, 0, s.t.Len())
	s.t.Ascend(func(r Range) bool {
		out = append(out, r)
		return true
	})
	return out
}

// Ascend calls f with the ranges in ascending order of offset until f
// returns false. f must not change the set.
func (s *Set) Ascend(f func(Range) bool) {
	s.settle()
	if s.t != nil {
		s.t.Ascend(f)
	}
}

// AscendFrom calls f with the ranges that start at or after off, in
// ascending order of offset, until f returns false. f must not change the
// set.
func (s *Set) AscendFrom(off int64, f func(Range) bool) {
	s.settle()
	if s.t != nil {
		s.t.AscendGreaterOrEqual(Range{Off: off}, f)
	}
}

// Bytes returns the number of bytes in the set.
func (s *Set) Bytes() int64 {
	s.settle()
	return s.bytes
}

// Len returns the number of ranges in the set.
func (s *Set) Len() int {
	s.settle()
	if s.t == nil {
		return 0
	}
	return s.t.Len()
}

// Covers reports whether every byte of [off, off+n) is in the set. It is
// true for a zero length and false for invalid arguments.
func (s *Set) Covers(off, n int64) bool {
	if !validRange(off, n) {
		return false
	}
	if n == 0 {
		return true
	}
	s.settle()
	r, ok := s.floor(off)
	return ok && r.End() >= off+n
}

// Overlaps reports whether any byte of [off, off+n) is in the set. It is
// false for a zero length and for invalid arguments.
func (s *Set) Overlaps(off, n int64) bool {
	s.settle()
	if n == 0 || !validRange(off, n) || s.t == nil {
		return false
	}
	if r, ok := s.floor(off); ok && r.End() > off {
		return true
	}
	hit := false
	s.t.AscendGreaterOrEqual(Range{Off: off + 1}, func(r Range) bool {
		hit = r.Off < off+n
		return false
	})
	return hit
}

// Clear empties the set, keeping its memory for reuse.
func (s *Set) Clear() {
	if s.t != nil {
		s.t.Clear(true)
	}
	s.added = s.added[:0]
	s.bytes = 0
}

// Coalesce returns a new slice in which the extents of the same Disk and
// Op that overlap or touch are merged into one, whose Gen is the highest
// Gen of those merged. Extents of different ops are never merged. The
// result is sorted by Disk, then Offset, then Op; exts is not modified.
//
// Extents that describe no bytes of a disk (a Length <= 0, a negative
// Offset, or an end beyond math.MaxInt64) are dropped.
func Coalesce(exts []Extent) []Extent {
	out := make([]Extent, 0, len(exts))
	for _, e := range exts {
		if e.Length > 0 && validRange(e.Offset, e.Length) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Extent) int {
		return cmp.Or(
			cmp.Compare(a.Disk, b.Disk),
			cmp.Compare(a.Op, b.Op),
			cmp.Compare(a.Offset, b.Offset),
		)
	})
	w := 0
	for _, e := range out {
		if w > 0 {
			p := &out[w-1]
			if p.Disk == e.Disk && p.Op == e.Op && p.End() >= e.Offset {
				p.Length = max(p.End(), e.End()) - p.Offset
				p.Gen = max(p.Gen, e.Gen)
				continue
			}
		}
		out[w] = e
		w++
	}
	out = slices.Clip(out[:w])
	// Merged extents of one disk and op have distinct offsets, so this
	// order is total and the result deterministic.
	slices.SortFunc(out, func(a, b Extent) int {
		return cmp.Or(
			cmp.Compare(a.Disk, b.Disk),
			cmp.Compare(a.Offset, b.Offset),
			cmp.Compare(a.Op, b.Op),
		)
	})
	return out
}
