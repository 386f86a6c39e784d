package windows

import (
	"errors"
	"slices"
	"testing"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// retrievalFixture lays out a RETRIEVAL_POINTERS_BUFFER as winioctl.h
// documents it: ExtentCount (DWORD) at 0, padding, StartingVcn at 8,
// then {NextVcn, Lcn} pairs of 16 bytes from 16.
func retrievalFixture(start int64, runs []Run) []byte {
	b := make([]byte, 16+16*len(runs))
	put32(b, 0, uint32(len(runs)))
	put64(b, 8, uint64(start))
	for i, r := range runs {
		put64(b, 16+16*i, uint64(r.VCN+r.Len))
		put64(b, 24+16*i, uint64(r.LCN))
	}
	return b
}

// bitmapFixture lays out a VOLUME_BITMAP_BUFFER: StartingLcn at 0,
// BitmapSize (clusters) at 8, the bits from 16.
func bitmapFixture(start, clusters int64, bits []byte) []byte {
	b := make([]byte, 16, 16+len(bits))
	put64(b, 0, uint64(start))
	put64(b, 8, uint64(clusters))
	return append(b, bits...)
}

func TestParseRetrievalPointers(t *testing.T) {
	runs := []Run{{0, 0x2200, 0x10}, {0x10, -1, 0x20}, {0x30, 0x100, 1}}
	got, next, err := ParseRetrievalPointers(retrievalFixture(0, runs))
	if err != nil || next != 0x31 || !slices.Equal(got, runs) {
		t.Fatalf("%v %d %v", got, next, err)
	}
	for name, b := range map[string][]byte{
		"short":        make([]byte, 12),
		"count beyond": func() []byte { b := retrievalFixture(0, runs); put32(b, 0, 4); return b }(),
		"vcn backward": retrievalFixture(0, []Run{{0, 5, 4}, {4, 9, -2}}),
		"lcn -2":       retrievalFixture(0, []Run{{0, -2, 4}}),
		"negative vcn": retrievalFixture(-1, []Run{{-1, 5, 4}}),
	} {
		if _, _, err := ParseRetrievalPointers(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBitmapDiff(t *testing.T) {
	prev, err := ParseVolumeBitmap(bitmapFixture(0, 20, []byte{0b00001111, 0b10000000, 0b0001}))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := ParseVolumeBitmap(bitmapFixture(0, 24, []byte{0b00111101, 0b10000001, 0b11110011}))
	if err != nil {
		t.Fatal(err)
	}
	// new: clusters 4,5 (byte 0), 8 (byte 1), 17 (byte 2), and 20..23
	// beyond prev's 20 clusters.
	got, err := NewlyUsed(prev, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := []Run{{-1, 4, 2}, {-1, 8, 1}, {-1, 17, 1}, {-1, 20, 4}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if !cur.Used(15) || cur.Used(14) || cur.Used(99) {
		t.Fatal("Used")
	}
	if _, err := ParseVolumeBitmap(bitmapFixture(0, 100, []byte{1})); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("short bitmap: %v", err)
	}
}

func TestFileRangesMapping(t *testing.T) {
	l := Layout{Offset: 1 << 20, Size: 1 << 30, ClusterSize: 4096}
	runs := []Run{{0, 100, 2}, {2, -1, 3}, {5, 500, 10}}
	got := l.FileRanges(runs, []FileRange{{Off: 4095, Len: 2}, {Off: 3 * 4096, Len: 3 * 4096}})
	want := []tracker.Range{
		{Off: 100 * 4096, Len: 2 * 4096},
		// VCN 3,4 are a hole; VCN 5 is LCN 500
		{Off: 500 * 4096, Len: 4096},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	d, ok := l.ToDisk(tracker.Range{Off: 4096, Len: 8192})
	if !ok || d != (tracker.Range{Off: 1<<20 + 4096, Len: 8192}) {
		t.Fatalf("ToDisk %v", d)
	}
	if _, ok := l.ToDisk(tracker.Range{Off: 1 << 30, Len: 1}); ok {
		t.Fatal("beyond the volume")
	}
}

func FuzzParseRetrievalPointers(f *testing.F) {
	f.Add(retrievalFixture(0, []Run{{0, 0x2200, 0x10}, {0x10, -1, 0x20}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		runs, _, err := ParseRetrievalPointers(b)
		if err != nil {
			return
		}
		for _, r := range runs {
			if r.Len <= 0 || r.VCN < 0 || r.LCN < -1 {
				t.Fatalf("bad run %+v", r)
			}
		}
	})
}

func FuzzParseVolumeBitmap(f *testing.F) {
	f.Add(bitmapFixture(0, 20, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseVolumeBitmap(b)
		if err != nil {
			return
		}
		if int64(len(m.Bits))*8 < m.Clusters {
			t.Fatalf("%d clusters in %d bytes", m.Clusters, len(m.Bits))
		}
		m.UsedRuns()
		if _, err := NewlyUsed(m, m); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseDiskExtents(t *testing.T) {
	// VOLUME_DISK_EXTENTS as winioctl.h lays it out: a count, padding,
	// then {DiskNumber, padding, StartingOffset, ExtentLength}.
	b := make([]byte, 8+2*24)
	put32(b, 0, 2)
	put32(b, 8, 1)
	put64(b, 16, 1<<20)
	put64(b, 24, 100<<30)
	put32(b, 32, 3)
	put64(b, 40, 16<<20)
	put64(b, 48, 4096)
	got, err := ParseDiskExtents(b)
	want := []DiskExtent{{Disk: 1, Offset: 1 << 20, Length: 100 << 30}, {Disk: 3, Offset: 16 << 20, Length: 4096}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	put32(b, 0, 3)
	if _, err := ParseDiskExtents(b); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("count beyond the buffer: %v", err)
	}
}
