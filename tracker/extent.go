package tracker

import (
	"cmp"
	"math"
	"slices"
	"sort"
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
// safe for concurrent use.
//
// Arguments that describe no valid range (a negative offset or length, or
// an end beyond math.MaxInt64) leave the set unchanged; they do not panic.
type Set struct {
	r     []Range
	bytes int64
}

// search returns the index of the first range for which f is true; f must
// be false for a prefix of the ranges and true for the rest.
func (s *Set) search(from int, f func(Range) bool) int {
	return from + sort.Search(len(s.r)-from, func(k int) bool { return f(s.r[from+k]) })
}

// Add adds the bytes [off, off+n), merging them with the ranges they
// overlap or touch. A zero length is a no-op, and so are invalid arguments.
// It costs O(log n + k) comparisons for k merged ranges, plus moving the
// tail of the slice when the number of ranges changes.
func (s *Set) Add(off, n int64) {
	if n == 0 || !validRange(off, n) {
		return
	}
	end := off + n
	// Ranges i..j-1 overlap or touch [off, end).
	i := s.search(0, func(r Range) bool { return r.End() >= off })
	j := s.search(i, func(r Range) bool { return r.Off > end })
	if i < j {
		off = min(off, s.r[i].Off)
		end = max(end, s.r[j-1].End())
		for _, r := range s.r[i:j] {
			s.bytes -= r.Len
		}
	}
	s.r = slices.Replace(s.r, i, j, Range{off, end - off})
	s.bytes += end - off
}

// Remove removes the bytes [off, off+n) from the set, cutting or splitting
// the ranges they overlap. A zero length is a no-op, and so are invalid
// arguments.
func (s *Set) Remove(off, n int64) {
	if n == 0 || !validRange(off, n) {
		return
	}
	end := off + n
	// Ranges i..j-1 overlap [off, end).
	i := s.search(0, func(r Range) bool { return r.End() > off })
	j := s.search(i, func(r Range) bool { return r.Off >= end })
	if i == j {
		return
	}
	var keep [2]Range
	nk := 0
	if first := s.r[i]; first.Off < off {
		keep[nk] = Range{first.Off, off - first.Off}
		nk++
	}
	if last := s.r[j-1]; last.End() > end {
		keep[nk] = Range{end, last.End() - end}
		nk++
	}
	for _, r := range s.r[i:j] {
		s.bytes -= r.Len
	}
	for _, r := range keep[:nk] {
		s.bytes += r.Len
	}
	s.r = slices.Replace(s.r, i, j, keep[:nk]...)
}

// Ranges returns a copy of the ranges of the set in ascending order.
func (s *Set) Ranges() []Range { return slices.Clone(s.r) }

// Bytes returns the number of bytes in the set.
func (s *Set) Bytes() int64 { return s.bytes }

// Len returns the number of ranges in the set.
func (s *Set) Len() int { return len(s.r) }

// Covers reports whether every byte of [off, off+n) is in the set. It is
// true for a zero length and false for invalid arguments.
func (s *Set) Covers(off, n int64) bool {
	if !validRange(off, n) {
		return false
	}
	if n == 0 {
		return true
	}
	i := s.search(0, func(r Range) bool { return r.End() > off })
	return i < len(s.r) && s.r[i].Off <= off && s.r[i].End() >= off+n
}

// Overlaps reports whether any byte of [off, off+n) is in the set. It is
// false for a zero length and for invalid arguments.
func (s *Set) Overlaps(off, n int64) bool {
	if n == 0 || !validRange(off, n) {
		return false
	}
	i := s.search(0, func(r Range) bool { return r.End() > off })
	return i < len(s.r) && s.r[i].Off < off+n
}

// Clear empties the set, keeping its memory for reuse.
func (s *Set) Clear() {
	s.r = s.r[:0]
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
