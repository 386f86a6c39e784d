package recovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand"
	"testing"
)

// memDisk is a disk in memory, as a failback source or target.
type memDisk struct {
	b      []byte
	writes int
}

func (m *memDisk) Size() int64 { return int64(len(m.b)) }

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) { return copy(p, m.b[off:]), nil }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	m.writes++
	return copy(m.b[off:], p), nil
}

func (m *memDisk) Sync() error { return nil }

func (m *memDisk) Hashes(ctx context.Context, off, n, block int64) ([][32]byte, error) {
	var out [][32]byte
	for i := off; i < off+n; i += block {
		out = append(out, sha256.Sum256(m.b[i:min(i+block, off+n)]))
	}
	return out, nil
}

// TestCompareRangeSendsOnlyWhatDiffers changes scattered 4 KiB blocks,
// a run of blocks and a partial last block of a source, and checks that
// the compare makes the target equal while writing only the fine blocks
// that differ.
func TestCompareRangeSendsOnlyWhatDiffers(t *testing.T) {
	const size = 9<<20 + 3*4096 + 512 // not a multiple of the coarse or fine block
	rng := rand.New(rand.NewSource(1))
	old := make([]byte, size)
	rng.Read(old)
	src := &memDisk{b: bytes.Clone(old)}
	changed := map[int64]bool{}
	change := func(off int64, n int) {
		rng.Read(src.b[off : off+int64(n)])
		for b := off / FailbackFine; b*FailbackFine < off+int64(n); b++ {
			changed[b] = true
		}
	}
	for i := 0; i < 200; i++ {
		change(rng.Int63n(size/FailbackFine)*FailbackFine, 4096)
	}
	change(3<<20+100, 70000) // unaligned run
	change(size-10, 10)      // the short last block
	var differ int64
	for b := range changed {
		differ += min(FailbackFine, size-b*FailbackFine)
	}
	dst := &memDisk{b: bytes.Clone(old)}
	var c FailbackCounters
	got, err := compareRange(context.Background(), src, dst, 0, size, make([]byte, FailbackCoarse), &c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src.b, dst.b) {
		t.Fatal("target differs from the source after the compare")
	}
	if got != differ || c.Differ != differ {
		t.Errorf("compare found %d (counted %d) bytes different, %d differ", got, c.Differ, differ)
	}
	if c.Sent != differ {
		t.Errorf("sent %d bytes, %d differ: only differing fine blocks may travel", c.Sent, differ)
	}
	if c.Compared != size {
		t.Errorf("compared %d bytes of %d", c.Compared, size)
	}
	// A second compare finds nothing and writes nothing.
	dst.writes = 0
	var c2 FailbackCounters
	if got, err := compareRange(context.Background(), src, dst, 0, size, make([]byte, FailbackCoarse), &c2); err != nil || got != 0 || c2.Sent != 0 || dst.writes != 0 {
		t.Errorf("second compare: differ %d, sent %d, writes %d, err %v; want nothing", got, c2.Sent, dst.writes, err)
	}
}

func TestAlignFine(t *testing.T) {
	for _, tc := range []struct{ off, n, size, wantOff, wantN int64 }{
		{0, 1, 1 << 20, 0, 4096},
		{4095, 2, 1 << 20, 0, 8192},
		{8192, 4096, 1 << 20, 8192, 4096},
		{(1 << 20) - 512, 512, 1<<20 - 0, (1 << 20) - 4096, 4096},
		{10000, 100, 10050, 8192, 10050 - 8192},
	} {
		off, n := alignFine(tc.off, tc.n, tc.size)
		if off != tc.wantOff || n != tc.wantN {
			t.Errorf("alignFine(%d, %d, %d) = %d, %d; want %d, %d", tc.off, tc.n, tc.size, off, n, tc.wantOff, tc.wantN)
		}
	}
}
