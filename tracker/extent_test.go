package tracker

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// checkSet fails t unless the ranges of s are sorted, non-empty, neither
// overlapping nor touching, and add up to s.Bytes().
func checkSet(t testing.TB, s *Set) {
	t.Helper()
	var sum int64
	rs := s.Ranges()
	if len(rs) != s.Len() {
		t.Fatalf("Len() = %d, but %d ranges", s.Len(), len(rs))
	}
	for i, r := range rs {
		if r.Off < 0 || r.Len <= 0 {
			t.Fatalf("range %d %+v: negative offset or empty", i, r)
		}
		if i > 0 && rs[i-1].End() >= r.Off {
			t.Fatalf("ranges %d %+v and %d %+v overlap, touch or are unsorted", i-1, rs[i-1], i, r)
		}
		sum += r.Len
	}
	if sum != s.Bytes() {
		t.Fatalf("Bytes() = %d, ranges add up to %d", s.Bytes(), sum)
	}
}

// setOp is one Add or Remove.
type setOp struct {
	remove bool
	off, n int64
}

func addOp(off, n int64) setOp    { return setOp{false, off, n} }
func removeOp(off, n int64) setOp { return setOp{true, off, n} }

func (o setOp) apply(s *Set) {
	if o.remove {
		s.Remove(o.off, o.n)
	} else {
		s.Add(o.off, o.n)
	}
}

func TestRangeEnd(t *testing.T) {
	if got := (Range{Off: 10, Len: 5}).End(); got != 15 {
		t.Fatalf("End() = %d, want 15", got)
	}
}

func TestSetAddRemove(t *testing.T) {
	tests := []struct {
		name string
		ops  []setOp
		want []Range
	}{
		{"empty", nil, nil},
		{"one", []setOp{addOp(10, 5)}, []Range{{10, 5}}},
		{"zero length", []setOp{addOp(10, 0)}, nil},
		{"zero length inside gap", []setOp{addOp(0, 5), addOp(7, 0), addOp(10, 5)}, []Range{{0, 5}, {10, 5}}},
		{"disjoint kept sorted", []setOp{addOp(20, 5), addOp(0, 5), addOp(10, 5)}, []Range{{0, 5}, {10, 5}, {20, 5}}},
		{"gap of one byte", []setOp{addOp(0, 5), addOp(6, 5)}, []Range{{0, 5}, {6, 5}}},
		{"adjacent after", []setOp{addOp(0, 5), addOp(5, 5)}, []Range{{0, 10}}},
		{"adjacent before", []setOp{addOp(5, 5), addOp(0, 5)}, []Range{{0, 10}}},
		{"overlap left", []setOp{addOp(10, 10), addOp(5, 10)}, []Range{{5, 15}}},
		{"overlap right", []setOp{addOp(10, 10), addOp(15, 10)}, []Range{{10, 15}}},
		{"contained", []setOp{addOp(10, 10), addOp(12, 3)}, []Range{{10, 10}}},
		{"same", []setOp{addOp(10, 10), addOp(10, 10)}, []Range{{10, 10}}},
		{"containing", []setOp{addOp(12, 3), addOp(10, 10)}, []Range{{10, 10}}},
		{"bridge two", []setOp{addOp(0, 5), addOp(10, 5), addOp(5, 5)}, []Range{{0, 15}}},
		{"bridge several", []setOp{addOp(0, 2), addOp(4, 2), addOp(8, 2), addOp(12, 2), addOp(20, 2), addOp(1, 12)}, []Range{{0, 14}, {20, 2}}},
		{"bridge several overhanging", []setOp{addOp(2, 2), addOp(6, 2), addOp(10, 2), addOp(0, 20)}, []Range{{0, 20}}},
		{"touch both neighbours", []setOp{addOp(0, 5), addOp(10, 5), addOp(20, 5), addOp(5, 5)}, []Range{{0, 15}, {20, 5}}},
		{"negative offset ignored", []setOp{addOp(0, 5), addOp(-1, 5)}, []Range{{0, 5}}},
		{"negative length ignored", []setOp{addOp(0, 5), addOp(10, -5)}, []Range{{0, 5}}},
		{"overflow ignored", []setOp{addOp(0, 5), addOp(math.MaxInt64-1, 2)}, []Range{{0, 5}}},
		{"up to max", []setOp{addOp(math.MaxInt64-2, 2)}, []Range{{math.MaxInt64 - 2, 2}}},

		{"remove from empty", []setOp{removeOp(0, 10)}, nil},
		{"remove all", []setOp{addOp(10, 10), removeOp(10, 10)}, nil},
		{"remove more than all", []setOp{addOp(10, 10), addOp(30, 5), removeOp(0, 100)}, nil},
		{"remove split", []setOp{addOp(0, 20), removeOp(5, 5)}, []Range{{0, 5}, {10, 10}}},
		{"remove head", []setOp{addOp(10, 10), removeOp(5, 10)}, []Range{{15, 5}}},
		{"remove tail", []setOp{addOp(10, 10), removeOp(15, 10)}, []Range{{10, 5}}},
		{"remove exact head", []setOp{addOp(10, 10), removeOp(10, 1)}, []Range{{11, 9}}},
		{"remove exact tail", []setOp{addOp(10, 10), removeOp(19, 1)}, []Range{{10, 9}}},
		{"remove in gap", []setOp{addOp(0, 5), addOp(10, 5), removeOp(5, 5)}, []Range{{0, 5}, {10, 5}}},
		{"remove touching only", []setOp{addOp(10, 5), removeOp(0, 10), removeOp(15, 10)}, []Range{{10, 5}}},
		{"remove across several", []setOp{addOp(0, 5), addOp(10, 5), addOp(20, 5), addOp(30, 5), removeOp(3, 20)}, []Range{{0, 3}, {23, 2}, {30, 5}}},
		{"remove zero length", []setOp{addOp(0, 10), removeOp(5, 0)}, []Range{{0, 10}}},
		{"remove negative ignored", []setOp{addOp(0, 10), removeOp(-5, 10), removeOp(5, -1)}, []Range{{0, 10}}},
		{"remove overflow ignored", []setOp{addOp(0, 10), removeOp(5, math.MaxInt64)}, []Range{{0, 10}}},
		{"add after split", []setOp{addOp(0, 20), removeOp(5, 5), addOp(5, 5)}, []Range{{0, 20}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set
			for _, o := range tt.ops {
				o.apply(&s)
				checkSet(t, &s)
			}
			got := s.Ranges()
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ranges = %v, want %v", got, tt.want)
			}
			var bytes int64
			for _, r := range tt.want {
				bytes += r.Len
			}
			if s.Bytes() != bytes || s.Len() != len(tt.want) {
				t.Fatalf("Bytes() = %d, Len() = %d, want %d, %d", s.Bytes(), s.Len(), bytes, len(tt.want))
			}
		})
	}
}

func TestSetCoversOverlaps(t *testing.T) {
	var s Set
	s.Add(10, 10) // [10, 20)
	s.Add(30, 10) // [30, 40)
	tests := []struct {
		off, n           int64
		covers, overlaps bool
	}{
		{10, 10, true, true},
		{10, 1, true, true},
		{19, 1, true, true},
		{12, 5, true, true},
		{9, 1, false, false},
		{20, 1, false, false},
		{9, 2, false, true},
		{19, 2, false, true},
		{9, 12, false, true},
		{20, 10, false, false},
		{15, 20, false, true}, // spans the gap
		{10, 30, false, true},
		{0, 100, false, true},
		{39, 1, true, true},
		{40, 1, false, false},
		{100, 5, false, false},
		{0, 10, false, false},
		{15, 0, true, false},   // empty range: covered, overlaps nothing
		{25, 0, true, false},   // also in a gap
		{-5, 20, false, false}, // invalid
		{15, -1, false, false},
		{15, math.MaxInt64, false, false},
	}
	for _, tt := range tests {
		if got := s.Covers(tt.off, tt.n); got != tt.covers {
			t.Errorf("Covers(%d, %d) = %v, want %v", tt.off, tt.n, got, tt.covers)
		}
		if got := s.Overlaps(tt.off, tt.n); got != tt.overlaps {
			t.Errorf("Overlaps(%d, %d) = %v, want %v", tt.off, tt.n, got, tt.overlaps)
		}
	}
	var empty Set
	if empty.Covers(0, 1) || empty.Overlaps(0, 1) || !empty.Covers(0, 0) {
		t.Errorf("empty set: Covers(0, 1) = %v, Overlaps(0, 1) = %v, Covers(0, 0) = %v",
			empty.Covers(0, 1), empty.Overlaps(0, 1), empty.Covers(0, 0))
	}
}

func TestSetClearAndCopy(t *testing.T) {
	var s Set
	s.Add(0, 10)
	s.Add(20, 10)
	rs := s.Ranges()
	rs[0] = Range{100, 1}
	if got := s.Ranges(); got[0] != (Range{0, 10}) {
		t.Fatalf("changing the slice Ranges returned changed the set: %v", got)
	}
	s.Clear()
	checkSet(t, &s)
	if s.Len() != 0 || s.Bytes() != 0 || len(s.Ranges()) != 0 || s.Overlaps(0, 100) {
		t.Fatalf("after Clear: Len %d Bytes %d Ranges %v", s.Len(), s.Bytes(), s.Ranges())
	}
	s.Add(5, 5)
	if got := s.Ranges(); !slices.Equal(got, []Range{{5, 5}}) {
		t.Fatalf("after Clear and Add: %v", got)
	}
}

// byteModel is a naive Set: one bool per byte.
type byteModel []bool

// apply applies o to m and returns by how many bytes m grew.
func (m byteModel) apply(o setOp) (delta int64) {
	if o.n <= 0 || o.off < 0 {
		return 0
	}
	for i := o.off; i < o.off+o.n; i++ {
		if m[i] == o.remove {
			m[i] = !o.remove
			delta++
		}
	}
	if o.remove {
		return -delta
	}
	return delta
}

func (m byteModel) ranges() []Range {
	var rs []Range
	for i := 0; i < len(m); i++ {
		if !m[i] {
			continue
		}
		j := i
		for j < len(m) && m[j] {
			j++
		}
		rs = append(rs, Range{int64(i), int64(j - i)})
		i = j
	}
	return rs
}

func (m byteModel) covers(off, n int64) bool {
	for i := off; i < off+n; i++ {
		if !m[i] {
			return false
		}
	}
	return true
}

func (m byteModel) overlaps(off, n int64) bool {
	for i := off; i < off+n; i++ {
		if m[i] {
			return true
		}
	}
	return false
}

// compareSet fails t unless s and m hold the same bytes and answer the same
// queries.
func compareSet(t testing.TB, s *Set, m byteModel, queries [][2]int64) {
	t.Helper()
	checkSet(t, s)
	if got, want := s.Ranges(), m.ranges(); !slices.Equal(got, want) {
		t.Fatalf("ranges = %v, model has %v", got, want)
	}
	compareQueries(t, s, m, queries)
}

// compareQueries fails t unless s and m answer the same queries.
func compareQueries(t testing.TB, s *Set, m byteModel, queries [][2]int64) {
	t.Helper()
	for _, q := range queries {
		if got, want := s.Covers(q[0], q[1]), m.covers(q[0], q[1]); got != want {
			t.Fatalf("Covers(%d, %d) = %v, model says %v; ranges %v", q[0], q[1], got, want, s.Ranges())
		}
		if got, want := s.Overlaps(q[0], q[1]), m.overlaps(q[0], q[1]); got != want {
			t.Fatalf("Overlaps(%d, %d) = %v, model says %v; ranges %v", q[0], q[1], got, want, s.Ranges())
		}
	}
}

func TestSetRandom(t *testing.T) {
	const size = 512
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewSource(seed))
			var s Set
			m := make(byteModel, size)
			for i := 0; i < 2000; i++ {
				off := rnd.Int63n(size)
				n := rnd.Int63n(min(40, size-off+1)) // may be 0
				o := setOp{remove: rnd.Intn(3) == 0, off: off, n: n}
				if rnd.Intn(50) == 0 {
					o.n = -o.n - 1 // invalid: must be ignored
				}
				o.apply(&s)
				m.apply(o)
				qoff := rnd.Int63n(size)
				qn := rnd.Int63n(size - qoff + 1)
				compareSet(t, &s, m, [][2]int64{{qoff, qn}, {qoff, min(qn, 3)}})
				if rnd.Intn(500) == 0 {
					s.Clear()
					clear(m)
				}
			}
		})
	}
}

// FuzzSet applies the Add and Remove operations encoded in data, three
// bytes each (kind, offset, length), some made invalid on purpose. After
// each it checks the invariants, the byte count and a few Covers and
// Overlaps queries against a byte model; at the end, the exact ranges.
func FuzzSet(f *testing.F) {
	f.Add([]byte{0, 10, 5, 0, 15, 5, 1, 12, 2})
	f.Add([]byte{0, 0, 255, 1, 1, 253, 0, 100, 0})
	f.Add([]byte{0, 1, 1, 0, 3, 1, 0, 5, 1, 0, 2, 1, 0, 4, 1})
	f.Add([]byte{2, 10, 5, 3, 10, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = 800 // offsets up to 511, lengths up to 255
		var s Set
		m := make(byteModel, size)
		var bytes int64
		if len(data) > 3*300 {
			data = data[:3*300] // keep each run fast
		}
		for len(data) >= 3 {
			kind, off, n := data[0], int64(data[1]), int64(data[2])
			data = data[3:]
			o := setOp{remove: kind&1 == 1, off: off, n: n}
			switch kind % 8 {
			case 2, 3:
				o.n = -n // invalid unless zero, must be ignored
			case 4, 7:
				o.off = -off - 1 // invalid, must be ignored
			case 5, 6:
				o.off += 256 // reach past the first 256 bytes
			}
			o.apply(&s)
			bytes += m.apply(o)
			checkSet(t, &s)
			if s.Bytes() != bytes {
				t.Fatalf("Bytes() = %d, model has %d; ranges %v", s.Bytes(), bytes, s.Ranges())
			}
			compareQueries(t, &s, m, [][2]int64{{off, n}, {off, 1}, {off + n/2, n}, {off + 256, n}})
		}
		compareSet(t, &s, m, nil)
	})
}

func TestCoalesce(t *testing.T) {
	w := func(disk string, off, n int64, gen uint64) Extent {
		return Extent{Disk: disk, Offset: off, Length: n, Op: OpWrite, Gen: gen}
	}
	d := func(disk string, off, n int64, gen uint64) Extent {
		return Extent{Disk: disk, Offset: off, Length: n, Op: OpDiscard, Gen: gen}
	}
	tests := []struct {
		name    string
		in, out []Extent
	}{
		{"nil", nil, nil},
		{"one", []Extent{w("a", 0, 10, 1)}, []Extent{w("a", 0, 10, 1)}},
		{"touching merge", []Extent{w("a", 10, 10, 1), w("a", 0, 10, 2)}, []Extent{w("a", 0, 20, 2)}},
		{"gap of one byte", []Extent{w("a", 0, 10, 1), w("a", 11, 10, 1)}, []Extent{w("a", 0, 10, 1), w("a", 11, 10, 1)}},
		{"overlap", []Extent{w("a", 0, 10, 3), w("a", 5, 10, 1)}, []Extent{w("a", 0, 15, 3)}},
		{"contained", []Extent{w("a", 0, 100, 1), w("a", 5, 10, 7)}, []Extent{w("a", 0, 100, 7)}},
		{"duplicates", []Extent{w("a", 0, 10, 1), w("a", 0, 10, 1)}, []Extent{w("a", 0, 10, 1)}},
		{"chain, gen max", []Extent{w("a", 20, 10, 2), w("a", 0, 10, 5), w("a", 10, 10, 4), w("a", 40, 1, 9)},
			[]Extent{w("a", 0, 30, 5), w("a", 40, 1, 9)}},
		{"different disks", []Extent{w("b", 0, 10, 1), w("a", 5, 10, 2)}, []Extent{w("a", 5, 10, 2), w("b", 0, 10, 1)}},
		{"different ops kept apart", []Extent{d("a", 5, 10, 1), w("a", 0, 10, 1), w("a", 10, 10, 2)},
			[]Extent{w("a", 0, 20, 2), d("a", 5, 10, 1)}},
		{"same offset, op order", []Extent{d("a", 0, 10, 1), w("a", 0, 5, 1)}, []Extent{w("a", 0, 5, 1), d("a", 0, 10, 1)}},
		{"discards merge", []Extent{d("a", 0, 10, 1), d("a", 10, 10, 3)}, []Extent{d("a", 0, 20, 3)}},
		{"op between does not bridge", []Extent{w("a", 0, 10, 1), d("a", 10, 10, 1), w("a", 20, 10, 1)},
			[]Extent{w("a", 0, 10, 1), d("a", 10, 10, 1), w("a", 20, 10, 1)}},
		{"invalid dropped", []Extent{w("a", 0, 0, 1), w("a", 5, -1, 1), w("a", -1, 5, 1), w("a", math.MaxInt64, 1, 1), w("a", 20, 1, 1)},
			[]Extent{w("a", 20, 1, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Coalesce(in)
			if !slices.Equal(in, tt.in) {
				t.Fatalf("input modified: %v", in)
			}
			if !slices.Equal(got, tt.out) {
				t.Fatalf("Coalesce(%v)\n = %v\nwant %v", tt.in, got, tt.out)
			}
		})
	}
}

func TestCoalesceDoesNotShareInput(t *testing.T) {
	in := []Extent{{Disk: "a", Offset: 0, Length: 10, Op: OpWrite, Gen: 1}}
	out := Coalesce(in)
	out[0].Length = 99
	if in[0].Length != 10 {
		t.Fatal("Coalesce returned the input's backing array")
	}
}

// TestCoalesceRandom checks Coalesce against a Set per disk and op: the
// bytes must be the same, the order sorted, and no two extents of one disk
// and op may overlap or touch.
func TestCoalesceRandom(t *testing.T) {
	disks := []string{"sda", "sdb"}
	ops := []Op{OpWrite, OpDiscard, OpDirty}
	type key struct {
		disk string
		op   Op
	}
	for seed := int64(1); seed <= 50; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		in := make([]Extent, rnd.Intn(200))
		sets := map[key]*Set{}
		maxGen := map[key][]uint64{} // per key, per byte
		for i := range in {
			e := Extent{
				Disk:   disks[rnd.Intn(len(disks))],
				Offset: rnd.Int63n(1000),
				Length: rnd.Int63n(30) + 1,
				Op:     ops[rnd.Intn(len(ops))],
				Gen:    uint64(rnd.Intn(10)),
			}
			in[i] = e
			k := key{e.Disk, e.Op}
			if sets[k] == nil {
				sets[k] = &Set{}
				maxGen[k] = make([]uint64, 1100)
			}
			sets[k].Add(e.Offset, e.Length)
			for b := e.Offset; b < e.End(); b++ {
				maxGen[k][b] = max(maxGen[k][b], e.Gen)
			}
		}
		out := Coalesce(in)
		got := map[key][]Range{}
		for i, e := range out {
			if i > 0 {
				p := out[i-1]
				if p.Disk > e.Disk || p.Disk == e.Disk && (p.Offset > e.Offset || p.Offset == e.Offset && p.Op >= e.Op) {
					t.Fatalf("seed %d: out of order: %+v before %+v", seed, p, e)
				}
			}
			k := key{e.Disk, e.Op}
			got[k] = append(got[k], Range{e.Offset, e.Length})
			var g uint64
			for b := e.Offset; b < e.End(); b++ {
				g = max(g, maxGen[k][b])
			}
			if e.Gen != g {
				t.Fatalf("seed %d: %+v: gen %d, want %d", seed, e, e.Gen, g)
			}
		}
		for k, s := range sets {
			if want := s.Ranges(); !slices.Equal(got[k], want) {
				t.Fatalf("seed %d: %v: extents %v, want %v", seed, k, got[k], want)
			}
		}
		if len(got) != len(sets) {
			t.Fatalf("seed %d: %d disk/op pairs out, %d in", seed, len(got), len(sets))
		}
	}
}

func BenchmarkSetAdd(b *testing.B) {
	rnd := rand.New(rand.NewSource(1))
	offs := make([]int64, 1<<16)
	for i := range offs {
		offs[i] = rnd.Int63n(1<<30) &^ 4095
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var s Set
		for _, off := range offs {
			s.Add(off, 4096)
		}
	}
}

// TestSetBatchedAdds: long runs of Add with no read in between (so ranges
// pile up and are merged into the tree in batches, crossing settleAt), on a
// set that is empty and on one that is not, then a read: the set must hold
// exactly what the model holds.
func TestSetBatchedAdds(t *testing.T) {
	const size = 20000
	for seed := int64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewSource(seed))
			var s Set
			m := make(byteModel, size)
			for round := 0; round < 4; round++ {
				adds := 1 + rnd.Intn(3*settleAt)
				for i := 0; i < adds; i++ {
					off := rnd.Int63n(size)
					n := rnd.Int63n(min(24, size-off+1))
					o := setOp{off: off, n: n}
					o.apply(&s)
					m.apply(o)
				}
				if rnd.Intn(2) == 0 {
					off := rnd.Int63n(size)
					o := setOp{remove: true, off: off, n: rnd.Int63n(min(500, size-off+1))}
					o.apply(&s)
					m.apply(o)
				}
				var bytes int64
				for _, b := range m {
					if b {
						bytes++
					}
				}
				if s.Bytes() != bytes {
					t.Fatalf("round %d: Bytes() = %d, model has %d", round, s.Bytes(), bytes)
				}
				compareSet(t, &s, m, [][2]int64{{rnd.Int63n(size), 30}, {0, size}})
			}
		})
	}
}
