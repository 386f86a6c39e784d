package hrlfmt

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// weaklyCompressible returns n bytes that lz4 shrinks by only a few per
// cent, like fio's default buffers: random bytes with a short run copied
// from earlier every 256 bytes.
func weaklyCompressible(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for i := 512; i+16 <= n; i += 256 {
		copy(b[i:i+16], b[i-300:])
	}
	return b
}

// TestCompressionPolicy: lz4 only where it saves a tenth or more.
func TestCompressionPolicy(t *testing.T) {
	half := append(randomBytes(3, 32<<10), make([]byte, 32<<10)...) // probes: random start, zero middle
	cases := []struct {
		name string
		data []byte
		want Compression
	}{
		{"random", randomBytes(1, 64<<10), CompressNone},
		{"weak 64KiB", weaklyCompressible(2, 64<<10), CompressNone},
		{"weak 6KiB (no probe)", weaklyCompressible(2, 6<<10), CompressNone},
		{"text", textBytes(1, 64<<10), CompressLZ4},
		{"text 1KiB", textBytes(1, 1<<10), CompressLZ4},
		{"random then zeros", half, CompressLZ4},
	}
	// The weak data must be data lz4 does shrink a little, or the case
	// would not test the policy.
	var comp lz4.Compressor
	weak := weaklyCompressible(2, 64<<10)
	dst := make([]byte, lz4.CompressBlockBound(len(weak)))
	if n, err := comp.CompressBlock(weak, dst); err != nil || n == 0 || n >= len(weak) || n < len(weak)*9/10 {
		t.Fatalf("weakly compressible data: lz4 gives %d of %d bytes (%v), want a gain under a tenth", n, len(weak), err)
	}
	dir := t.TempDir()
	h := testHeader(1)
	var recs []Record
	for i, c := range cases {
		recs = append(recs, dataRec(int64(i)<<20, 1, c.data))
	}
	_, back, err := readAll(mustRead(t, writeSegment(t, dir, h, recs)))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if back[i].Compression != c.want {
			t.Errorf("%s: stored as %v, want %v", c.name, back[i].Compression, c.want)
		}
		if !bytes.Equal(back[i].Data, c.data) {
			t.Errorf("%s: data read back differs", c.name)
		}
	}
}

// syncCounter counts the fsyncs of a segment file.
type syncCounter struct {
	*os.File
	syncs int
}

func (s *syncCounter) Sync() error { s.syncs++; return s.File.Sync() }

// TestSegmentFsyncs: creating a segment and writing records fsync nothing;
// sealing it fsyncs the file once (then the directory).
func TestSegmentFsyncs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), SegmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	sc := &syncCounter{File: f}
	h := testHeader(1)
	h.Version, h.Minor = Version, MinorVersion
	w, err := startSegment(sc, f.Name(), "", h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteData(0, 1, textBytes(1, 4096)); err != nil {
		t.Fatal(err)
	}
	if sc.syncs != 0 {
		t.Errorf("%d fsyncs before the seal, want 0", sc.syncs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if sc.syncs != 1 {
		t.Errorf("%d fsyncs of the file at the seal, want 1", sc.syncs)
	}
	if s, err := VerifySegment(f.Name()); err != nil || !s.Complete || s.Records != 1 {
		t.Errorf("sealed segment: %+v, %v", s, err)
	}
}

// TestAdaptiveProbing: after a run of extents lz4 cannot shrink, the
// encoder tries only one extent in probeEvery, and returns to trying every
// extent once one gains: compressible data that follows is compressed
// again within probeEvery extents, and from then on every extent is. The
// same holds for extents too short to probe, tried whole.
func TestAdaptiveProbing(t *testing.T) {
	for _, size := range []int{64 << 10, 4 << 10} {
		const weak, text = 3 * rawStreak, 3 * probeEvery
		var recs []Record
		for i := range weak {
			recs = append(recs, dataRec(int64(i)*int64(size), 1, weaklyCompressible(uint64(i), size)))
		}
		for i := range text {
			recs = append(recs, dataRec(int64(weak+i)*int64(size), 1, textBytes(uint64(i), size)))
		}
		h := testHeader(1)
		h.DiskSize = 1 << 30
		_, back, err := readAll(mustRead(t, writeSegment(t, t.TempDir(), h, recs)))
		if err != nil {
			t.Fatal(err)
		}
		first := -1
		for i, r := range back {
			if !bytes.Equal(r.Data, recs[i].Data) {
				t.Fatalf("%d bytes: record %d reads back different data", size, i)
			}
			switch {
			case i < weak && r.Compression != CompressNone:
				t.Errorf("%d bytes: weakly compressible record %d stored with %v", size, i, r.Compression)
			case i >= weak && first < 0 && r.Compression == CompressLZ4:
				first = i - weak
			case i >= weak && first >= 0 && r.Compression != CompressLZ4:
				t.Errorf("%d bytes: text record %d stored raw after text was found compressible", size, i)
			}
		}
		// 0 would mean that every extent was still tried after the run
		// of weak ones: no probes saved.
		if first <= 0 || first >= probeEvery {
			t.Errorf("%d bytes: first compressed text record is number %d, want one of 1 to %d", size, first, probeEvery-1)
		}
	}
}
