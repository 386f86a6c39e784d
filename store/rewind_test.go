package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// TestSpans checks the span helpers against a bitmap of the bytes.
func TestSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 200
	bits := func(s []span) []bool {
		b := make([]bool, n)
		for _, p := range s {
			for i := p.lo; i < p.hi; i++ {
				b[i] = true
			}
		}
		return b
	}
	random := func() []span {
		var s []span
		for range rng.IntN(8) {
			lo := rng.Int64N(n)
			s = append(s, span{lo, lo + rng.Int64N(n-lo+1)})
		}
		return s
	}
	wellFormed := func(s []span) bool {
		for i, p := range s {
			if p.lo >= p.hi || i > 0 && s[i-1].hi > p.lo {
				return false
			}
		}
		return true
	}
	for k := range 2000 {
		a, b := random(), random()
		ba, bb := bits(a), bits(b)
		ma, mb := mergeSpans(slices.Clone(a)), mergeSpans(slices.Clone(b))
		if !wellFormed(ma) || !slices.Equal(bits(ma), ba) {
			t.Fatalf("case %d: mergeSpans(%v) = %v", k, a, ma)
		}
		for i := 1; i < len(ma); i++ {
			if ma[i-1].hi == ma[i].lo {
				t.Fatalf("case %d: mergeSpans(%v) = %v: touching spans not merged", k, a, ma)
			}
		}
		in, out := intersectSpans(ma, mb), subtractSpans(ma, mb)
		bi, bo := bits(in), bits(out)
		for i := range n {
			if bi[i] != (ba[i] && bb[i]) || bo[i] != (ba[i] && !bb[i]) {
				t.Fatalf("case %d: %v and %v: intersection %v, difference %v wrong at byte %d", k, ma, mb, in, out, i)
			}
		}
		if !wellFormed(in) || !wellFormed(out) {
			t.Fatalf("case %d: %v and %v: intersection %v or difference %v not in order", k, ma, mb, in, out)
		}
		if got, want := spanBytes(ma), int64(len(slices.DeleteFunc(ba, func(x bool) bool { return !x }))); got != want {
			t.Fatalf("case %d: spanBytes(%v) = %d, want %d", k, ma, got, want)
		}
	}
}

// materializeEvery materializes every listed point of the store and checks
// each image against the plans' models; it returns the ids of the points
// whose images were all rewound and of those that were replayed.
func materializeEvery(t *testing.T, l *Local, plans []*diskPlan, outDir string) (rewound, replayed []string) {
	t.Helper()
	ctx := context.Background()
	pts, err := l.Points(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) == 0 {
		t.Fatal("no points listed")
	}
	for _, pt := range pts {
		var paths []bool
		l.pathHook = func(disk string, r bool) { paths = append(paths, r) }
		imgs, err := l.Materialize(ctx, testMachine, pt.ID, filepath.Join(outDir, pt.ID))
		l.pathHook = nil
		if err != nil {
			t.Fatal(err)
		}
		checkImages(t, imgs, plans, pt.ID)
		switch {
		case !slices.Contains(paths, false):
			rewound = append(rewound, pt.ID)
		case !slices.Contains(paths, true):
			replayed = append(replayed, pt.ID)
		}
		os.RemoveAll(filepath.Join(outDir, pt.ID))
	}
	return rewound, replayed
}

// TestMaterializeRewind forces the rewind (a copy of the replica here, where
// the file system may not clone) for every point of random journals of three
// disks (extents at any byte offset, zeroes, a disk that grows, changes
// after the last cut): every image equals the model at its point.
func TestMaterializeRewind(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			points := pointNames(16)
			segDir := t.TempDir()
			plans := []*diskPlan{
				planDisk(rng, "nvme0n1", 2<<20, points, nil, -1, 0),
				planDisk(rng, "sda", 1<<20, points, nil, -1, 0),
				planDisk(rng, "sdb", 768<<10+512, points, nil, 7, 1<<20+4096),
			}
			ctx := context.Background()
			l := openTest(t, t.TempDir())
			if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}, {Name: "nvme0n1"}}); err != nil {
				t.Fatal(err)
			}
			for _, p := range plans {
				writePlan(t, segDir, p)
				for seq, path := range p.paths {
					if err := l.Apply(ctx, testMachine, p.name, uint64(seq), path); err != nil {
						t.Fatal(err)
					}
				}
			}
			l.rewind = rewindAlways
			rewound, _ := materializeEvery(t, l, plans, t.TempDir())
			if len(rewound) != len(points) {
				t.Fatalf("rewound %v, want all %d points", rewound, len(points))
			}
		})
	}
}

// TestMaterializeRewindAfterCrash interrupts Apply once records of a
// segment are in current.img but before the segment is marked applied, as
// a crash would: the rewind must still put back what that segment changed,
// for every point listed.
func TestMaterializeRewindAfterCrash(t *testing.T) {
	ctx := context.Background()
	const size = 64 << 10
	a, b := bytes.Repeat([]byte{0xaa}, 4096), bytes.Repeat([]byte{0xbb}, 5000)
	cut := func(id string, gen uint64) hrlfmt.Record {
		return hrlfmt.Record{Type: hrlfmt.RecCut, Gen: gen, Cut: &hrlfmt.Cut{Kind: hrlfmt.CutCrash, Gen: gen, Time: t0, PointID: id}}
	}
	model := make([]byte, size)
	copy(model, a)
	p := &diskPlan{name: "sda", snap: map[string][]byte{"p0": model}, cutSeq: map[string]uint64{"p0": 0}, segs: []segSpec{
		{size: size, recs: []hrlfmt.Record{{Type: hrlfmt.RecData, Offset: 0, Length: 4096, Data: a, Gen: 1}, cut("p0", 2)}},
		// What the interrupted segment writes over p0's bytes, and beside.
		{size: size, recs: []hrlfmt.Record{
			{Type: hrlfmt.RecData, Offset: 1000, Length: int64(len(b)), Data: b, Gen: 2},
			{Type: hrlfmt.RecZero, Offset: 100, Length: 50, Gen: 2, Reason: hrlfmt.ZeroDiscarded},
			{Type: hrlfmt.RecData, Offset: 30001, Length: int64(len(b)), Data: b, Gen: 2},
			cut("p1", 3),
		}},
	}}
	writePlan(t, t.TempDir(), p)
	for _, stage := range []string{"record 0", "record 2", "records", "index", "cuts"} {
		t.Run(strings.ReplaceAll(stage, " ", "-"), func(t *testing.T) {
			l := openTest(t, t.TempDir())
			if err := l.Apply(ctx, testMachine, "sda", 0, p.paths[0]); err != nil {
				t.Fatal(err)
			}
			l.hook = func(s string) error {
				if s == stage {
					return errCrash
				}
				return nil
			}
			if err := l.Apply(ctx, testMachine, "sda", 1, p.paths[1]); err == nil || !strings.Contains(err.Error(), errCrash.Error()) {
				t.Fatalf("interrupted apply: %v", err)
			}
			l.hook = nil
			cur, err := os.ReadFile(filepath.Join(l.diskDir(testMachine, "sda"), currentImg))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(cur, model) {
				t.Fatal("the interrupted apply left nothing of its segment in the replica")
			}
			l.rewind = rewindAlways
			rewound, _ := materializeEvery(t, l, []*diskPlan{p}, t.TempDir())
			if !slices.Equal(rewound, []string{"p0"}) {
				t.Fatalf("rewound %v, want p0", rewound)
			}
		})
	}
}

// TestMaterializeRewindDamagedLater damages the extent index of the last
// segment: the points before it, which the replay can make without that
// segment, are then replayed, not rewound, and still right.
func TestMaterializeRewindDamagedLater(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 6)
	l := openTest(t, t.TempDir())
	for seq, path := range p.paths {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
			t.Fatal(err)
		}
	}
	last := uint64(len(p.segs) - 1)
	idx := filepath.Join(l.diskDir(testMachine, "sda"), journalDir, indexName(last))
	if err := os.WriteFile(idx, []byte("LBXI garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	pts, err := l.Points(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	l.rewind = rewindAlways
	var before []string
	for _, pt := range pts {
		if p.cutSeq[pt.ID] < last {
			before = append(before, pt.ID)
		}
	}
	if len(before) == 0 {
		t.Fatal("plan: no point before the last segment")
	}
	for _, id := range before {
		var paths []bool
		l.pathHook = func(_ string, r bool) { paths = append(paths, r) }
		imgs, err := l.Materialize(ctx, testMachine, id, t.TempDir())
		l.pathHook = nil
		if err != nil {
			t.Fatalf("point %s with a damaged later index: %v", id, err)
		}
		checkImages(t, imgs, []*diskPlan{p}, id)
		if len(paths) != 1 || paths[0] {
			t.Fatalf("point %s: rewound %v, want replayed", id, paths)
		}
	}
}

// TestMaterializeRewindBase forces the rewind on a disk whose base holds
// data (older segments folded by Prune) that records after a point
// overwrite: the image must take those bytes back from base.img.
func TestMaterializeRewindBase(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 8))
	points := pointNames(12)
	p := planDisk(rng, "sda", 512<<10, points, nil, -1, 0)
	writePlan(t, t.TempDir(), p)
	l := openTest(t, t.TempDir())
	for seq, path := range p.paths {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
			t.Fatal(err)
		}
	}
	// The plan's cuts are one second apart from t0: keep the last four.
	res, err := l.Prune(ctx, testMachine, Retention{Window: 4 * time.Second, KeepAll: 4 * time.Second, Thin: time.Second}, t0.Add(12*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged == 0 {
		t.Fatalf("prune merged nothing: %+v", res)
	}
	base, err := os.ReadFile(filepath.Join(l.diskDir(testMachine, "sda"), baseImg))
	if err != nil || !slices.ContainsFunc(base, func(c byte) bool { return c != 0 }) {
		t.Fatalf("base.img holds no data after prune (%v)", err)
	}
	l.rewind = rewindAlways
	rewound, _ := materializeEvery(t, l, []*diskPlan{p}, t.TempDir())
	t.Logf("prune merged %d segments; rewound %v", res.Merged, rewound)
	if len(rewound) == 0 {
		t.Fatal("nothing rewound")
	}
}

// TestMaterializeRewindWhileApplying rewinds the replica, forced, to the
// latest listed point over and over while segments are being applied:
// the clone of current.img and the segments it holds must agree.
func TestMaterializeRewindWhileApplying(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	p := planDisk(rng, "sda", 512<<10, pointNames(30), nil, -1, 0)
	writePlan(t, t.TempDir(), p)
	l := openTest(t, t.TempDir())
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}}); err != nil {
		t.Fatal(err)
	}
	l.rewind = rewindAlways
	done := make(chan error, 1)
	go func() {
		for seq, path := range p.paths {
			if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	checked := 0
	for applying := true; applying; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			applying = false
		default:
		}
		pts, err := l.Points(ctx, testMachine)
		if err != nil {
			t.Fatal(err)
		}
		pt, ok := LatestPoint(pts, "")
		if !ok {
			continue
		}
		imgs, err := l.Materialize(ctx, testMachine, pt.ID, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		checkImages(t, imgs, []*diskPlan{p}, pt.ID)
		checked++
	}
	t.Logf("%d rewound images checked during replication", checked)
	if checked == 0 {
		t.Fatal("no point materialized")
	}
}
