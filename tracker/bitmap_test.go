package tracker

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func TestValidateGranularity(t *testing.T) {
	for _, g := range []int64{4096, 8192, DefaultGranularity, 1 << 20, 1 << 30} {
		if err := ValidateGranularity(g); err != nil {
			t.Errorf("ValidateGranularity(%d) = %v, want nil", g, err)
		}
	}
	for _, g := range []int64{math.MinInt64, -4096, 0, 1, 512, 2048, 3000, 4095, 4097, 65535, 3 << 20, 1 << 31, math.MaxInt64} {
		err := ValidateGranularity(g)
		if err == nil {
			t.Errorf("ValidateGranularity(%d) = nil, want an error", g)
			continue
		}
		want := fmt.Sprintf("bitmap granularity %d: must be a power of two between 4 KiB and 1 GiB", g)
		if err.Error() != want {
			t.Errorf("ValidateGranularity(%d) = %q, want %q", g, err, want)
		}
	}
}

func TestBadGranularityPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"BitmapWords":   func() { BitmapWords(1<<20, 3000) },
		"GranuleSpan":   func() { GranuleSpan(0, 1, 0) },
		"BitmapExtents": func() { BitmapExtents("a", []uint64{1}, 0, 1<<31, 1<<40, 1) },
	} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, "must be a power of two") {
					t.Errorf("%s: recovered %v, want a granularity panic", name, r)
				}
			}()
			f()
		}()
	}
}

func TestBitmapWords(t *testing.T) {
	const G = DefaultGranularity
	tests := []struct {
		size, g, want int64
	}{
		{0, G, 0},
		{-1, G, 0},
		{1, G, 1},
		{G, G, 1},
		{64 * G, G, 1},
		{64*G + 1, G, 2},
		{128 * G, G, 2},
		{1 << 40, G, 1 << 40 / G / 64},          // 1 TiB: 256 Ki words, 2 MiB
		{1<<40 + 4096, 4096, 1<<40/4096/64 + 1}, // a partial granule
		{math.MaxInt64, 4096, (math.MaxInt64/4096 + 1 + 63) / 64},
		{math.MaxInt64, 1 << 30, (math.MaxInt64/(1<<30) + 1 + 63) / 64},
	}
	for _, tt := range tests {
		if got := BitmapWords(tt.size, tt.g); got != tt.want {
			t.Errorf("BitmapWords(%d, %d) = %d, want %d", tt.size, tt.g, got, tt.want)
		}
	}
}

func TestGranuleSpan(t *testing.T) {
	const G = 4096
	tests := []struct {
		off, n      int64
		first, last int64
	}{
		{0, 1, 0, 0},
		{0, G, 0, 0},
		{0, G + 1, 0, 1},
		{G - 1, 1, 0, 0},
		{G - 1, 2, 0, 1},
		{G, G, 1, 1},
		{5 * G, 3 * G, 5, 7},
		{5*G + 100, 3 * G, 5, 8},
		{0, 0, 0, -1},
		{G, -1, 0, -1},
		{-1, 10, 0, -1},
		{math.MaxInt64 - 10, 100, (math.MaxInt64 - 10) / G, math.MaxInt64 / G},
	}
	for _, tt := range tests {
		first, last := GranuleSpan(tt.off, tt.n, G)
		if first != tt.first || last != tt.last {
			t.Errorf("GranuleSpan(%d, %d, %d) = %d, %d, want %d, %d", tt.off, tt.n, G, first, last, tt.first, tt.last)
		}
	}
}

func TestSetBits(t *testing.T) {
	const ones = ^uint64(0)
	tests := []struct {
		first, last int64
		want        []uint64
	}{
		{0, 0, []uint64{1, 0, 0}},
		{3, 3, []uint64{8, 0, 0}},
		{63, 63, []uint64{1 << 63, 0, 0}},
		{64, 64, []uint64{0, 1, 0}},
		{0, 63, []uint64{ones, 0, 0}},
		{4, 7, []uint64{0xf0, 0, 0}},
		{62, 65, []uint64{3 << 62, 3, 0}},
		{60, 131, []uint64{0xf << 60, ones, 0xf}},
		{0, 191, []uint64{ones, ones, ones}},
		{-10, 1, []uint64{3, 0, 0}},          // clipped below
		{190, 1000, []uint64{0, 0, 3 << 62}}, // clipped above
		{192, 200, []uint64{0, 0, 0}},        // beyond the words
		{5, 4, []uint64{0, 0, 0}},            // empty
		{0, -1, []uint64{0, 0, 0}},           // the empty span of GranuleSpan
	}
	for _, tt := range tests {
		words := make([]uint64, 3)
		SetBits(words, tt.first, tt.last)
		if !slices.Equal(words, tt.want) {
			t.Errorf("SetBits(%d, %d) = %#x, want %#x", tt.first, tt.last, words, tt.want)
		}
	}
	SetBits(nil, 0, 10) // must not panic
	words := []uint64{1 << 10, 0}
	SetBits(words, 0, 1)
	if words[0] != 1<<10|3 {
		t.Errorf("SetBits cleared bits: %#x", words[0])
	}
}

func TestBitmapExtents(t *testing.T) {
	const G = 4096
	const ones = ^uint64(0)
	x := func(off, n int64) Extent {
		return Extent{Disk: "d", Offset: off, Length: n, Op: OpDirty, Gen: 7}
	}
	tests := []struct {
		name      string
		words     []uint64
		firstWord int64
		diskSize  int64
		want      []Extent
	}{
		{"nil", nil, 0, 1 << 30, nil},
		{"empty", make([]uint64, 100), 0, 1 << 30, nil},
		{"bit 0", []uint64{1}, 0, 1 << 30, []Extent{x(0, G)}},
		{"bit 63", []uint64{1 << 63}, 0, 1 << 30, []Extent{x(63*G, G)}},
		{"two runs", []uint64{0b1110_0110}, 0, 1 << 30, []Extent{x(1*G, 2*G), x(5*G, 3*G)}},
		{"alternating", []uint64{0b10101}, 0, 1 << 30, []Extent{x(0, G), x(2*G, G), x(4*G, G)}},
		{"full word", []uint64{ones}, 0, 1 << 30, []Extent{x(0, 64*G)}},
		{"across a word boundary", []uint64{1 << 63, 1}, 0, 1 << 30, []Extent{x(63*G, 2*G)}},
		{"across several words", []uint64{3 << 62, ones, ones, 1}, 0, 1 << 30, []Extent{x(62*G, (2+128+1)*G)}},
		{"zero word breaks a run", []uint64{1 << 63, 0, 1}, 0, 1 << 30, []Extent{x(63*G, G), x(128*G, G)}},
		{"first word", []uint64{1, 1 << 63}, 10, 1 << 30, []Extent{x(640*G, G), x(767*G, G)}},
		{"first word run", []uint64{1 << 63, 1}, 10, 1 << 30, []Extent{x(703*G, 2*G)}},
		{"clipped to disk size", []uint64{0b11}, 0, G + 100, []Extent{x(0, G+100)}},
		{"clipped exactly", []uint64{0b11}, 0, 2 * G, []Extent{x(0, 2*G)}},
		{"bits beyond the disk ignored", []uint64{0b1111}, 0, 2*G - 1, []Extent{x(0, 2*G-1)}},
		{"only bits beyond the disk", []uint64{0b1100}, 0, 2 * G, nil},
		{"words beyond the disk ignored", []uint64{1, 1, 1}, 0, 64 * G, []Extent{x(0, G)}},
		{"run into the padding", []uint64{ones, ones}, 0, 100 * G, []Extent{x(0, 100*G)}},
		{"window beyond the disk", []uint64{1}, 5, 64 * G, nil},
		{"negative first word", []uint64{ones, 2}, -1, 1 << 30, []Extent{x(G, G)}},
		{"all before word 0", []uint64{ones}, -1, 1 << 30, nil},
		{"zero disk", []uint64{1}, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BitmapExtents("d", tt.words, tt.firstWord, G, tt.diskSize, 7)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("BitmapExtents(%#x, %d, %d)\n = %v\nwant %v", tt.words, tt.firstWord, tt.diskSize, got, tt.want)
			}
		})
	}
}

func TestBitmapExtentsHugeDisk(t *testing.T) {
	// The last granule of a disk of math.MaxInt64 bytes: no overflow.
	const G = 1 << 30
	nw := BitmapWords(math.MaxInt64, G)
	got := BitmapExtents("d", []uint64{^uint64(0)}, nw-1, G, math.MaxInt64, 1)
	first := (nw - 1) * 64 * G
	want := []Extent{{Disk: "d", Offset: first, Length: math.MaxInt64 - first, Op: OpDirty, Gen: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := BitmapExtents("d", []uint64{1}, math.MaxInt64, G, math.MaxInt64, 1); got != nil {
		t.Fatalf("word beyond the disk: got %v", got)
	}
}

// naiveExtents converts words to extents one bit at a time.
func naiveExtents(words []uint64, firstWord, g, diskSize int64, gen uint64) []Extent {
	var out []Extent
	for k, w := range words {
		for i := int64(0); i < 64; i++ {
			if w&(1<<i) == 0 {
				continue
			}
			granule := (firstWord+int64(k))*64 + i
			off := granule * g
			if granule < 0 || off >= diskSize {
				continue
			}
			end := min(off+g, diskSize)
			if n := len(out); n > 0 && out[n-1].End() == off {
				out[n-1].Length = end - out[n-1].Offset
				continue
			}
			out = append(out, Extent{Disk: "d", Offset: off, Length: end - off, Op: OpDirty, Gen: gen})
		}
	}
	return out
}

// bitmapRoundTrip marks the byte ranges writes in a fresh bitmap of a disk of
// diskSize bytes, converts the words [lo, hi) back with BitmapExtents and
// checks the result against a naive conversion and, when the window is the
// whole bitmap, that every byte written is covered and no granule that
// saw no write is.
func bitmapRoundTrip(t testing.TB, g, diskSize int64, writes []Range, lo, hi int64) {
	t.Helper()
	nw := BitmapWords(diskSize, g)
	words := make([]uint64, nw)
	touched := make(map[int64]bool)
	for _, w := range writes {
		first, last := GranuleSpan(w.Off, w.Len, g)
		SetBits(words, first, last)
		for gr := first; gr <= last; gr++ {
			touched[gr] = true
		}
	}
	lo, hi = max(lo, 0), min(hi, nw)
	if lo > hi {
		lo = hi
	}
	got := BitmapExtents("d", words[lo:hi], lo, g, diskSize, 3)
	if want := naiveExtents(words[lo:hi], lo, g, diskSize, 3); !slices.Equal(got, want) {
		t.Fatalf("g %d size %d words [%d, %d): got %v, want %v", g, diskSize, lo, hi, got, want)
	}
	for i, e := range got {
		if e.Length <= 0 || e.End() > diskSize || i > 0 && got[i-1].End() >= e.Offset {
			t.Fatalf("bad extent %d %+v in %v", i, e, got)
		}
	}
	if lo != 0 || hi != nw {
		return
	}
	var s Set
	for _, e := range got {
		s.Add(e.Offset, e.Length)
	}
	for _, w := range writes {
		if w.Off >= 0 && w.Len > 0 && w.End() <= diskSize && !s.Covers(w.Off, w.Len) {
			t.Fatalf("write %+v not covered by %v", w, got)
		}
	}
	var want int64
	for gr := range touched {
		if gr*g < diskSize {
			want += min(g, diskSize-gr*g)
		}
	}
	if s.Bytes() != want {
		t.Fatalf("extents cover %d bytes, the granules written %d", s.Bytes(), want)
	}
}

func TestBitmapRoundTrip(t *testing.T) {
	gs := []int64{4096, DefaultGranularity, 1 << 20}
	for seed := int64(1); seed <= 30; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		for i := 0; i < 50; i++ {
			g := gs[rnd.Intn(len(gs))]
			diskSize := rnd.Int63n(g*64*6) + 1
			if rnd.Intn(4) == 0 {
				diskSize = (diskSize/g + 1) * g // a whole number of granules
			}
			writes := make([]Range, rnd.Intn(30))
			for j := range writes {
				off := rnd.Int63n(diskSize)
				n := rnd.Int63n(min(diskSize-off, g*int64(rnd.Intn(100)+1))) + 1
				writes[j] = Range{off, n}
			}
			nw := BitmapWords(diskSize, g)
			bitmapRoundTrip(t, g, diskSize, writes, 0, nw)
			a, b := rnd.Int63n(nw+1), rnd.Int63n(nw+1)
			bitmapRoundTrip(t, g, diskSize, writes, min(a, b), max(a, b))
		}
	}
}

// FuzzBitmapRoundTrip decodes a granularity, a disk size, a window of words
// and writes from data and checks the round trip through the bitmap.
func FuzzBitmapRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint32(1<<20), uint16(0), uint16(100), []byte{0, 0, 0, 10, 0, 1})
	f.Add(uint8(4), uint32(100<<20+1), uint16(3), uint16(7), []byte{255, 255, 255, 255, 255, 255, 1, 2, 3, 4, 5, 6})
	f.Add(uint8(1), uint32(8192*64*2), uint16(0), uint16(2), []byte{0, 0x7f, 0xff, 0, 0, 2})
	f.Fuzz(func(t *testing.T, gexp uint8, size uint32, lo, hi uint16, data []byte) {
		g := int64(4096) << (gexp % 9) // 4 KiB .. 1 MiB
		diskSize := int64(size)%(g*64*8) + 1
		var writes []Range
		for len(data) >= 6 {
			off := int64(binary.LittleEndian.Uint32(data)) % diskSize
			n := int64(binary.LittleEndian.Uint16(data[4:]))*512%(diskSize-off) + 1
			writes = append(writes, Range{off, n})
			data = data[6:]
		}
		bitmapRoundTrip(t, g, diskSize, writes, 0, math.MaxInt64)
		bitmapRoundTrip(t, g, diskSize, writes, int64(min(lo, hi)), int64(max(lo, hi)))
	})
}

func BenchmarkBitmapExtentsSparse(b *testing.B) {
	// A 1 TiB disk at 64 KiB granularity with 1000 dirty granules.
	const size = 1 << 40
	words := make([]uint64, BitmapWords(size, DefaultGranularity))
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 1000; i++ {
		gr := rnd.Int63n(int64(len(words)) * 64)
		SetBits(words, gr, gr)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		BitmapExtents("d", words, 0, DefaultGranularity, size, 1)
	}
}

func BenchmarkBitmapExtentsDense(b *testing.B) {
	const size = 64 << 30
	words := make([]uint64, BitmapWords(size, DefaultGranularity))
	rnd := rand.New(rand.NewSource(1))
	for i := range words {
		words[i] = rnd.Uint64()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		BitmapExtents("d", words, 0, DefaultGranularity, size, 1)
	}
}
