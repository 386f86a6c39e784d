package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// TestMaterializeSparse checks that 1 MiB written to a 1 GiB disk gives a
// replica and an image of about 1 MiB on disk.
func TestMaterializeSparse(t *testing.T) {
	ctx := context.Background()
	const size = 1 << 30
	rng := rand.New(rand.NewPCG(5, 5))
	model := map[int64][]byte{}
	var recs []hrlfmt.Record
	for i := range 8 {
		off := int64(i)*(size/8) + 4096*rng.Int64N(1000)
		data := make([]byte, 128<<10)
		for k := range data {
			data[k] = byte(rng.UintN(256))
		}
		model[off] = data
		recs = append(recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: int64(len(data)), Data: data, Gen: 1})
	}
	recs = append(recs, hrlfmt.Record{Type: hrlfmt.RecZero, Offset: 0, Length: size / 2, Gen: 2, Reason: hrlfmt.ZeroDiscarded})
	for off := range model {
		if off < size/2 {
			delete(model, off)
		}
	}
	recs = append(recs, hrlfmt.Record{Type: hrlfmt.RecCut, Gen: 3, Cut: &hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: 3, Time: t0, PointID: "p"}})
	seg := writeSegment(t, t.TempDir(), testMachine, "big", 0, segSpec{size: size, recs: recs})
	l := openTest(t, t.TempDir())
	if err := l.Apply(ctx, testMachine, "big", 0, seg); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	start := time.Now()
	imgs, err := l.Materialize(ctx, testMachine, "p", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("materialized a 1 GiB disk in %v", time.Since(start))
	for _, path := range []string{imgs[0].Path, filepath.Join(l.diskDir(testMachine, "big"), currentImg)} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512
		t.Logf("%s: size %d, allocated %d", filepath.Base(path), fi.Size(), alloc)
		if fi.Size() != size || alloc > 4<<20 {
			t.Fatalf("%s: size %d, allocated %d; want %d, at most 4 MiB", path, fi.Size(), alloc, size)
		}
		for off, data := range model {
			got := make([]byte, len(data))
			if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: data at %d differs (%v)", path, off, err)
			}
		}
	}
	// Hashes of the hole and the data, without reading 1 GiB.
	off := int64(size / 2)
	for o := range model {
		off = min(off, o)
	}
	hs, err := l.Hashes(ctx, testMachine, "big", 0, size, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	zero := sha256.Sum256(make([]byte, 1<<20))
	nonZero := 0
	for _, h := range hs {
		if h != zero {
			nonZero++
		}
	}
	if len(hs) != 1024 || nonZero < 4 || nonZero > 8 {
		t.Fatalf("%d hashes, %d of data; want 1024, 4 to 8", len(hs), nonZero)
	}
}

// TestCopySparse checks that copySparse copies the data of a sparse file
// exactly, to a shorter or longer size, and leaves its holes as holes.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const size = 64 << 20
	if err := src.Truncate(size); err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, off := range []int64{0, 5<<20 + 17, 32 << 20, size - 1000} {
		data := make([]byte, min(300<<10, size-off))
		for i := range data {
			data[i] = byte(rng.UintN(255) + 1)
		}
		if _, err := src.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], data)
	}
	for _, n := range []int64{size, 40 << 20, size + 1<<20} {
		dst, err := os.Create(filepath.Join(dir, "dst"))
		if err != nil {
			t.Fatal(err)
		}
		if err := copySparse(dst, src, n); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst.Name())
		if err != nil {
			t.Fatal(err)
		}
		want := append(model[:min(n, size):min(n, size)], make([]byte, max(0, n-size))...)
		if !bytes.Equal(got, want) {
			t.Fatalf("copy of %d bytes differs at byte %d", n, firstDiff(got, want))
		}
		fi, _ := dst.Stat()
		if alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512; alloc > 4<<20 {
			t.Fatalf("copy of %d bytes: %d bytes allocated, want at most 4 MiB", n, alloc)
		}
		dst.Close()
		os.Remove(dst.Name())
	}
}
