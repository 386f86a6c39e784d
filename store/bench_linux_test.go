//go:build linux

package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// benchSize reads a size in bytes (with an optional K, M or G suffix,
// powers of 1024) from the environment.
func benchSize(b *testing.B, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	mult := int64(1)
	switch v[len(v)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive size such as 512M", name, os.Getenv(name))
	}
	return n * mult
}

// dropCaches writes back and drops the page cache (root only), so that
// the next step reads from the device.
func dropCaches(b *testing.B) {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Fatalf("drop caches (LIFEBOAT_BENCH_COLD needs root): %v", err)
	}
}

// allocated returns the bytes a file has allocated.
func allocated(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// canReflink reports whether dir's file system shares extents (FICLONE).
func canReflink(dir string) bool {
	a, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(a.Name())
	defer a.Close()
	a.Write(make([]byte, 4096))
	c, err := os.CreateTemp(dir, ".reflink-probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(c.Name())
	defer c.Close()
	return unix.IoctlFileClone(int(c.Fd()), int(a.Fd())) == nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkMaterialize measures what materializing a point costs against
// copying the whole replica, side by side in one run (see
// scripts/bench-recovery.sh and docs/PERFORMANCE.md, "Recovery").
//
// Setup (not timed): a disk of LIFEBOAT_BENCH_DISK bytes [10G]; segments
// of 64 MiB write LIFEBOAT_BENCH_BASE [1G] of random data in 1 MiB
// records at distinct random 1 MiB-aligned places, then a point; Prune,
// two days later, folds them all into base.img; then
// LIFEBOAT_BENCH_CHANGED [100M] of random 64 KiB writes at random 4 KiB-
// aligned offsets across the disk, in LIFEBOAT_BENCH_SEGMENTS [8]
// segments, each ending with a point, all kept; then LIFEBOAT_BENCH_AFTER
// [10M] more of them in one segment ending with the point "newest" (0:
// none), the changes that replication brings after the point one fails
// over to. Everything lives in
// LIFEBOAT_BENCH_DIR [a temporary directory], so that the script can put
// it on another file system.
//
// Each iteration, timed separately: Materialize of the point with
// CHANGED since the base, as Materialize chooses (materialize); the same
// forced to replay from the base (replay: what Materialize did before it
// could rewind a clone of the replica, and what it does without reflink);
// Materialize of the point "newest" when AFTER is not 0; a sparse copy of
// base.img alone (the part of a replay that does not depend on the
// changes); and "cp --sparse=always --reflink=never" of current.img
// followed by an fsync, a full copy of the disk's data. Reported: the
// medians, ratio = materialize/fullcopy and replay-ratio =
// replay/fullcopy. LIFEBOAT_BENCH_COLD=1 drops the page cache before each
// timed step (root).
func BenchmarkMaterialize(b *testing.B) {
	diskSize := benchSize(b, "LIFEBOAT_BENCH_DISK", 10<<30)
	baseBytes := benchSize(b, "LIFEBOAT_BENCH_BASE", 1<<30)
	changed := benchSize(b, "LIFEBOAT_BENCH_CHANGED", 100<<20)
	after := int64(10 << 20)
	if os.Getenv("LIFEBOAT_BENCH_AFTER") != "0" {
		after = benchSize(b, "LIFEBOAT_BENCH_AFTER", after)
	} else {
		after = 0
	}
	nseg := int(benchSize(b, "LIFEBOAT_BENCH_SEGMENTS", 8))
	cold := os.Getenv("LIFEBOAT_BENCH_COLD") == "1"
	dir := os.Getenv("LIFEBOAT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "bench-materialize-*"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	const chunk = 1 << 20
	if baseBytes > diskSize/2 || changed > diskSize/2 || after > diskSize/2 || baseBytes%chunk != 0 {
		b.Fatalf("want a base of whole MiB and changes of at most half the disk (disk %d, base %d, changes %d, after %d)", diskSize, baseBytes, changed, after)
	}
	ctx := context.Background()
	l, err := OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	bytesSrc := rand.NewChaCha8([32]byte{1})
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	segDir := filepath.Join(dir, "segments")
	if err := os.MkdirAll(segDir, 0o700); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	seq := uint64(0)
	// write writes and applies one segment: records of data at offs, then
	// a cut.
	write := func(offs []int64, n int, cut string, at time.Time) {
		path := filepath.Join(segDir, hrlfmt.SegmentName(seq))
		w, err := hrlfmt.CreateSegment(path, hrlfmt.Header{Machine: testMachine, Disk: "sda", DiskSize: diskSize, Seq: seq, Created: at})
		if err != nil {
			b.Fatal(err)
		}
		data := make([]byte, n)
		for _, off := range offs {
			bytesSrc.Read(data)
			if err := w.WriteData(off, seq+1, data); err != nil {
				b.Fatal(err)
			}
		}
		if cut != "" {
			if err := w.WriteCut(hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: seq + 1, Time: at, PointID: cut}); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if err := l.Apply(ctx, testMachine, "sda", seq, path); err != nil {
			b.Fatal(err)
		}
		os.Remove(path)
		seq++
	}
	slots := rng.Perm(int(diskSize / chunk))[:baseBytes/chunk]
	const perSeg = 64 << 20 / chunk
	for i := 0; i < len(slots); i += perSeg {
		offs := make([]int64, 0, perSeg)
		for _, s := range slots[i:min(i+perSeg, len(slots))] {
			offs = append(offs, int64(s)*chunk)
		}
		cut := ""
		if i+perSeg >= len(slots) {
			cut = "base"
		}
		write(offs, chunk, cut, t0)
	}
	baseSegs := seq
	const w = 64 << 10
	writes := changed / w
	tLast := t0.Add(48 * time.Hour)
	for s := range nseg {
		offs := make([]int64, 0, writes/int64(nseg)+1)
		for k := int64(s); k < writes; k += int64(nseg) {
			offs = append(offs, rng.Int64N((diskSize-w)/4096)*4096)
		}
		tLast = t0.Add(48*time.Hour + time.Duration(s)*time.Minute)
		write(offs, w, fmt.Sprintf("change-%d", s), tLast)
	}
	point := fmt.Sprintf("change-%d", nseg-1)
	if after > 0 {
		offs := make([]int64, 0, after/w)
		for range after / w {
			offs = append(offs, rng.Int64N((diskSize-w)/4096)*4096)
		}
		tLast = tLast.Add(time.Minute)
		write(offs, w, "newest", tLast)
		nseg++
	}
	res, err := l.Prune(ctx, testMachine, DefaultRetention, tLast.Add(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	if res.Merged != int(baseSegs) {
		b.Fatalf("prune merged %d segments, want the %d of the base", res.Merged, baseSegs)
	}
	ddir := l.diskDir(testMachine, "sda")
	cur, base := filepath.Join(ddir, currentImg), filepath.Join(ddir, baseImg)
	var journal int64
	ents, _ := os.ReadDir(filepath.Join(ddir, journalDir))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			journal += fi.Size()
		}
	}
	reflink := canReflink(dir)
	b.Logf("setup in %v: disk %d MiB, base.img %d MiB allocated (%d segments folded), journal %d MiB in %d segments (%d MiB after the point), current.img %d MiB allocated; reflink: %v; cold cache: %v",
		time.Since(start).Round(time.Second), diskSize>>20, allocated(base)>>20, res.Merged, journal>>20, nseg, after>>20, allocated(cur)>>20, reflink, cold)

	// materialize times Materialize of point with the rewind mode m and
	// returns the time and which way it went.
	n := 0
	materialize := func(point string, m rewindMode) (time.Duration, string, int64) {
		b.StopTimer()
		out := filepath.Join(dir, fmt.Sprintf("out-%d", n))
		if cold {
			dropCaches(b)
		}
		way := "replayed"
		l.rewind = m
		l.pathHook = func(_ string, rewound bool) {
			if rewound {
				way = "rewound"
			}
		}
		b.StartTimer()
		t := time.Now()
		imgs, err := l.Materialize(ctx, testMachine, point, out)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t)
		b.StopTimer()
		l.rewind, l.pathHook = rewindAuto, nil
		alloc := allocated(imgs[0].Path)
		os.RemoveAll(out)
		return d, way, alloc
	}

	var mat, replay, newest, baseCopy, full []time.Duration
	for b.Loop() {
		n++
		d, way, imgAlloc := materialize(point, rewindAuto)
		mat = append(mat, d)
		d, _, _ = materialize(point, rewindNever)
		replay = append(replay, d)
		newestMsg := ""
		if after > 0 {
			d, nway, _ := materialize("newest", rewindAuto)
			newest = append(newest, d)
			newestMsg = fmt.Sprintf(", newest point %v (%s)", d.Round(time.Millisecond), nway)
		}

		// The base copy alone, as Materialize makes it.
		if cold {
			dropCaches(b)
		}
		t := time.Now()
		src, err := os.Open(base)
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, "base-copy.img"))
		if err != nil {
			b.Fatal(err)
		}
		if err := copySparse(dst, src, diskSize); err != nil {
			b.Fatal(err)
		}
		if err := dst.Sync(); err != nil {
			b.Fatal(err)
		}
		baseCopy = append(baseCopy, time.Since(t))
		src.Close()
		dst.Close()
		os.Remove(dst.Name())

		// The full copy of the replica.
		if cold {
			dropCaches(b)
		}
		b.StartTimer()
		t = time.Now()
		fullPath := filepath.Join(dir, "full.img")
		if out, err := exec.Command("cp", "--sparse=always", "--reflink=never", cur, fullPath).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		f, err := os.OpenFile(fullPath, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		full = append(full, time.Since(t))
		b.StopTimer()
		b.Logf("run %d: materialize %v (%s, image %d MiB allocated), replay %v%s, base copy %v, full copy %v (%d MiB allocated)",
			n, mat[n-1].Round(time.Millisecond), way, imgAlloc>>20, replay[n-1].Round(time.Millisecond), newestMsg,
			baseCopy[n-1].Round(time.Millisecond), full[n-1].Round(time.Millisecond), allocated(fullPath)>>20)
		os.Remove(fullPath)
		b.StartTimer()
	}
	m, rp, bc, fc := median(mat), median(replay), median(baseCopy), median(full)
	b.ReportMetric(m.Seconds(), "materialize-s")
	b.ReportMetric(rp.Seconds(), "replay-s")
	if len(newest) > 0 {
		b.ReportMetric(median(newest).Seconds(), "newest-s")
	}
	b.ReportMetric(bc.Seconds(), "basecopy-s")
	b.ReportMetric(fc.Seconds(), "fullcopy-s")
	b.ReportMetric(m.Seconds()/fc.Seconds(), "ratio")
	b.ReportMetric(rp.Seconds()/fc.Seconds(), "replay-ratio")
}
