package store

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestProbeReflink checks the probe on XFS made with reflink=1 and with
// reflink=0 (loop devices made here), and on the test's temporary
// directory when that is ext4 or tmpfs, which cannot share extents.
func TestProbeReflink(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  func(t *testing.T) string
		want bool
	}{
		{"xfs-reflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, true) }, true},
		{"xfs-noreflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, false) }, false},
		{"tmp", func(t *testing.T) string { return testenv.NewNoReflinkDir(t) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			got, err := ProbeReflink(dir)
			if err != nil || got != c.want {
				t.Fatalf("ProbeReflink(%s) = %v, %v; want %v", dir, got, err, c.want)
			}
			l := openTest(t, filepath.Join(dir, "store"))
			if l.Reflink() != c.want {
				t.Fatalf("Local.Reflink() = %v, want %v", l.Reflink(), c.want)
			}
			if _, err := ProbeReflink(filepath.Join(dir, "missing")); err == nil {
				t.Fatal("probe of a missing directory: no error")
			}
		})
	}
}

// TestMaterializeRewindXFS materializes every point of a random journal
// on XFS with reflink, as Materialize chooses: every image equals the
// model; the newest point is a rewound clone of the replica and the
// oldest, with more changes after it than before, is replayed.
func TestMaterializeRewindXFS(t *testing.T) {
	dir := testenv.NewXFS(t, 512<<20, true)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 11))
	points := pointNames(20)
	p := planDisk(rng, "sda", 8<<20, points, nil, -1, 0)
	writePlan(t, t.TempDir(), p)
	l := openTest(t, filepath.Join(dir, "store"))
	if !l.Reflink() {
		t.Fatal("store on XFS with reflink=1: Reflink() is false")
	}
	for seq, path := range p.paths {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
			t.Fatal(err)
		}
	}
	rewound, replayed := materializeEvery(t, l, []*diskPlan{p}, filepath.Join(dir, "out"))
	t.Logf("rewound %v; replayed %v", rewound, replayed)
	if len(rewound) == 0 || rewound[len(rewound)-1] != points[len(points)-1] {
		t.Fatalf("the newest point %s was not rewound (rewound %v)", points[len(points)-1], rewound)
	}
	if len(replayed) == 0 || replayed[0] != points[0] {
		t.Fatalf("the oldest point %s was not replayed (replayed %v)", points[0], replayed)
	}

	// An output directory on another file system cannot hold a clone of
	// the replica: the newest point is then replayed, as right.
	other := t.TempDir()
	if ok, err := ProbeReflink(other); err != nil || ok {
		t.Logf("not checked: TMPDIR shares extents too (%v, %v), no other file system to try", ok, err)
		return
	}
	var paths []bool
	l.pathHook = func(_ string, r bool) { paths = append(paths, r) }
	imgs, err := l.Materialize(ctx, testMachine, points[len(points)-1], other)
	l.pathHook = nil
	if err != nil {
		t.Fatal(err)
	}
	checkImages(t, imgs, []*diskPlan{p}, points[len(points)-1])
	if len(paths) != 1 || paths[0] {
		t.Fatalf("into another file system: rewound %v, want replayed", paths)
	}
}

// TestSharedStoreNeverRewinds: a store opened shared (scale-out process
// servers) may have current.img written by another process, which this
// process's locks do not order: Materialize must replay, even on XFS with
// reflink, and still produce the right images.
func TestSharedStoreNeverRewinds(t *testing.T) {
	dir := testenv.NewXFS(t, 512<<20, true)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 12))
	points := pointNames(6)
	p := planDisk(rng, "sda", 8<<20, points, nil, -1, 0)
	writePlan(t, t.TempDir(), p)
	l, err := OpenLocalShared(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if !l.Reflink() {
		t.Fatal("store on XFS with reflink=1: Reflink() is false")
	}
	for seq, path := range p.paths {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
			t.Fatal(err)
		}
	}
	rewound, replayed := materializeEvery(t, l, []*diskPlan{p}, filepath.Join(dir, "out"))
	if len(rewound) != 0 {
		t.Fatalf("a shared store rewound %v; want every point replayed (replayed %v)", rewound, replayed)
	}
	if len(replayed) != len(points) {
		t.Fatalf("replayed %v, want all %d points", replayed, len(points))
	}
}
