//go:build linux

package azblob

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/store"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBenchAzurite is the benchmark of make bench-azure (docs/PERFORMANCE.md):
// apply throughput to Azurite, this process's CPU per GiB applied, and what
// materializing a point reads from the store against a full download of
// the disk. It runs only with LIFEBOAT_BENCH_AZURE=1.
func TestBenchAzurite(t *testing.T) {
	if os.Getenv("LIFEBOAT_BENCH_AZURE") != "1" {
		t.Skip("benchmark: make bench-azure")
	}
	az := startAzurite(t)
	ctx := context.Background()
	bs := az.open(t, az.container(t, "bench"), "ps1")
	const size, segData, nSeg = 1 << 30, 32 << 20, 8 // 256 MiB written of a 1 GiB disk
	rng := rand.New(rand.NewPCG(9, 9))
	dir := t.TempDir()
	block := make([]byte, 1<<20)
	var paths []string
	for i := range nSeg { // a full copy: 8 × 32 MiB of 1 MiB writes
		s := seg{size: size}
		for off := int64(i) * segData; off < int64(i+1)*segData; off += 1 << 20 {
			for k := range block {
				block[k] = byte(rng.Uint32())
			}
			s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: 1 << 20, Data: append([]byte(nil), block...)})
		}
		c := hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: 1, Time: t0.Add(time.Duration(i) * time.Second), PointID: fmt.Sprintf("full%d", i)}
		s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecCut, Cut: &c})
		paths = append(paths, writeSeg(t, dir, "sda", uint64(i), s))
	}
	for i := range 4 { // then scattered 4 KiB changes, 16 MiB in all
		s := seg{size: size}
		for range 1024 {
			d := make([]byte, 4096)
			for k := range d {
				d[k] = byte(rng.Uint32())
			}
			s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: rng.Int64N(size/4096) * 4096, Length: 4096, Data: d})
		}
		c := hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: 1, Time: t0.Add(time.Hour + time.Duration(i)*time.Second), PointID: fmt.Sprintf("delta%d", i)}
		s.recs = append(s.recs, hrlfmt.Record{Type: hrlfmt.RecCut, Cut: &c})
		paths = append(paths, writeSeg(t, dir, "sda", uint64(nSeg+i), s))
	}
	cpu0, t0w := cpuTime(), time.Now()
	for i, p := range paths[:nSeg] {
		if err := bs.Apply(ctx, testMachine, "sda", uint64(i), p); err != nil {
			t.Fatal(err)
		}
	}
	wall, cpu := time.Since(t0w), cpuTime()-cpu0
	gib := float64(nSeg*segData) / (1 << 30)
	t.Logf("apply, 1 MiB writes: %d MiB in %v = %.1f MiB/s; CPU %.2f s per GiB applied", nSeg*segData>>20, wall.Round(time.Millisecond),
		float64(nSeg*segData>>20)/wall.Seconds(), cpu.Seconds()/gib)
	cpu0, t0w = cpuTime(), time.Now()
	for i, p := range paths[nSeg:] {
		if err := bs.Apply(ctx, testMachine, "sda", uint64(nSeg+i), p); err != nil {
			t.Fatal(err)
		}
	}
	wall = time.Since(t0w)
	t.Logf("apply, 4 KiB scattered writes: 16 MiB in %v = %.1f MiB/s; CPU %v", wall.Round(time.Millisecond), 16/wall.Seconds(), (cpuTime() - cpu0).Round(time.Millisecond))
	// Retention folds the full copy into the base; the point after it
	// then costs the base's allocated pages plus its changes.
	res, err := bs.Prune(ctx, testMachine, store.Retention{Window: time.Minute, KeepAll: time.Minute, Thin: time.Hour}, t0.Add(time.Hour+30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %d segments (%d MiB) folded into the base", res.Merged, res.MergedBytes>>20)
	for _, id := range []string{"delta0", "delta3"} {
		before := bs.ReadBytes()
		t0w = time.Now()
		if _, err := bs.Materialize(ctx, testMachine, id, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		read := bs.ReadBytes() - before
		t.Logf("materialize %s: %d MiB read from the store in %v; a full download is %d MiB (%.2fx)", id, read>>20,
			time.Since(t0w).Round(time.Millisecond), BlobSize(size)>>20, float64(read)/float64(BlobSize(size)))
	}
}
