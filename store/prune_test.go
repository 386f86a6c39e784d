package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

func errorsIsPruned(err error) bool {
	return errors.Is(err, ErrPruned) && errors.Is(err, ErrNotFound)
}

// TestRetainedRule checks the retention rule on points at known times
// (now is 12:30 UTC, so Thin buckets are whole hours).
func TestRetainedRule(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 30, 0, 0, time.UTC)
	at := func(day, h, m, s int) time.Time { return time.Date(2026, 1, day, h, m, s, 0, time.UTC) }
	type pt struct {
		time time.Time
		keep bool
		why  string
	}
	r := Retention{Window: 24 * time.Hour, KeepAll: 2 * time.Hour, Thin: time.Hour}
	cases := []struct {
		name string
		r    Retention
		pts  []pt
	}{{
		name: "default policy",
		r:    r,
		pts: []pt{
			{time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC), false, "older than the window"},
			{at(1, 12, 10, 0), false, "older than the window (24h20m)"},
			{at(1, 12, 30, 0), true, "exactly Window old, newest of its hour"},
			{at(1, 13, 5, 0), false, "not the newest of 13:00-14:00"},
			{at(1, 13, 40, 0), false, "not the newest of 13:00-14:00"},
			{at(1, 13, 55, 0), true, "newest of 13:00-14:00"},
			{at(2, 9, 5, 0), false, "not the newest of 09:00-10:00"},
			{at(2, 9, 59, 59), true, "newest of 09:00-10:00"},
			{at(2, 10, 5, 0), false, "its hour's newest point is within KeepAll"},
			{at(2, 10, 30, 0), true, "exactly KeepAll old"},
			{at(2, 10, 45, 0), true, "within KeepAll"},
			{at(2, 12, 29, 0), true, "within KeepAll"},
			{at(2, 13, 0, 0), true, "in the future"},
		},
	}, {
		name: "an idle machine keeps its last point",
		r:    r,
		pts: []pt{
			{at(1, 1, 0, 0), false, "old"},
			{at(1, 2, 0, 0), false, "old"},
			{time.Date(2025, 12, 30, 0, 0, 0, 0, time.UTC), true, "the newest (last listed), even older than the window"},
		},
	}, {
		name: "ties go to the later listed",
		r:    r,
		pts: []pt{
			{at(2, 5, 10, 0), false, "same time, listed first"},
			{at(2, 5, 10, 0), true, "same time, listed later"},
			{at(2, 5, 5, 0), false, "older in the same hour, listed after"},
			{at(2, 12, 0, 0), true, "newest"},
		},
	}, {
		name: "KeepAll longer than Window widens the window",
		r:    Retention{Window: time.Hour, KeepAll: 5 * time.Hour, Thin: time.Hour},
		pts: []pt{
			{at(2, 7, 0, 0), false, "5h30m old"},
			{at(2, 7, 40, 0), true, "4h50m old: within KeepAll"},
			{at(2, 12, 0, 0), true, "newest"},
		},
	}, {
		name: "thin buckets of 6 hours",
		r:    Retention{Window: 48 * time.Hour, KeepAll: 30 * time.Minute, Thin: 6 * time.Hour},
		pts: []pt{
			{at(1, 0, 30, 0), false, "00:00-06:00"},
			{at(1, 5, 59, 0), true, "newest of 00:00-06:00"},
			{at(1, 6, 0, 0), true, "newest of 06:00-12:00"},
			{at(2, 6, 0, 0), false, "06:00-12:00 of day 2"},
			{at(2, 11, 0, 0), true, "newest of 06:00-12:00 of day 2"},
			{at(2, 12, 10, 0), true, "within KeepAll"},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.r.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			pts := make([]Point, len(c.pts))
			for i, p := range c.pts {
				pts[i] = Point{ID: fmt.Sprint(i), Time: p.time}
			}
			got := retained(pts, r, now)
			for i, p := range c.pts {
				if got[i] != p.keep {
					t.Errorf("point %d at %s (%s): kept %v, want %v", i, p.time.Format(time.TimeOnly), p.why, got[i], p.keep)
				}
			}
		})
	}
	if r, err := (Retention{}).withDefaults(); err != nil || r != DefaultRetention {
		t.Fatalf("zero retention: %+v, %v; want the default", r, err)
	}
	if r, err := (Retention{Thin: time.Minute}).withDefaults(); err != nil || r.Thin != time.Minute || r.Window != DefaultRetention.Window || r.KeepAll != DefaultRetention.KeepAll {
		t.Fatalf("retention with Thin only: %+v, %v", r, err)
	}
	for _, bad := range []Retention{{Window: -1}, {KeepAll: -time.Hour}, {Thin: -1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Fatalf("retention %+v: no error", bad)
		}
	}
}

// TestRetainedProperties checks the rule's promises on random points:
// the newest is kept, so is every point within KeepAll, no other point
// older than Window is, and within the window at most one point of each
// Thin bucket is kept past KeepAll, which is the newest of its bucket.
func TestRetainedProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	now := time.Date(2026, 3, 1, 0, 17, 0, 0, time.UTC)
	for iter := range 200 {
		r := Retention{
			Window:  time.Duration(1+rng.IntN(48)) * time.Hour,
			KeepAll: time.Duration(rng.IntN(4*60)) * time.Minute,
			Thin:    time.Duration(1+rng.IntN(180)) * time.Minute,
		}
		r, _ = r.withDefaults()
		n := 1 + rng.IntN(200)
		pts := make([]Point, n)
		for i := range pts {
			pts[i] = Point{ID: fmt.Sprint(i), Time: now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour)))).Add(time.Hour)}
		}
		if rng.IntN(2) == 0 {
			slices.SortFunc(pts, func(a, b Point) int { return a.Time.Compare(b.Time) })
		}
		keep := retained(pts, r, now)
		kept := map[int64]int{}
		for i, p := range pts {
			age := now.Sub(p.Time)
			b := p.Time.UnixNano() / int64(r.Thin)
			switch {
			case i == n-1 && !keep[i]:
				t.Fatalf("iter %d: the newest point dropped", iter)
			case age <= r.KeepAll && !keep[i]:
				t.Fatalf("iter %d: point %s old dropped with KeepAll %s", iter, age, r.KeepAll)
			case i != n-1 && age > r.Window && keep[i]:
				t.Fatalf("iter %d: point %s old kept with Window %s", iter, age, r.Window)
			case i != n-1 && age > r.KeepAll && keep[i]:
				kept[b]++
				if kept[b] > 1 {
					t.Fatalf("iter %d: two points kept in one Thin bucket past KeepAll", iter)
				}
				for j, q := range pts {
					if q.Time.UnixNano()/int64(r.Thin) == b && (q.Time.After(p.Time) || q.Time.Equal(p.Time) && j > i) {
						t.Fatalf("iter %d: point %d kept, %d is newer in its bucket", iter, i, j)
					}
				}
			}
		}
	}
}

// pruneModel tracks what a machine's points should be across Prunes.
type pruneModel struct {
	pts     []tpoint
	dropped map[string]bool // dropped once, dropped forever
	gone    map[string]bool // no longer listed
}

// prune applies the rule to the points listed (those cut on every disk)
// and returns the ids newly dropped.
func (m *pruneModel) prune(listed []string, r Retention, now time.Time) []string {
	r, _ = r.withDefaults()
	byID := map[string]tpoint{}
	for _, p := range m.pts {
		byID[p.id] = p
	}
	var pts []Point
	for _, id := range listed {
		if !m.gone[id] {
			pts = append(pts, Point{ID: id, Time: byID[id].time})
		}
	}
	keep := retained(pts, r, now)
	var newly []string
	for i, p := range pts {
		if !keep[i] && !m.dropped[p.ID] {
			m.dropped[p.ID] = true
			newly = append(newly, p.ID)
		}
		if m.dropped[p.ID] && now.Sub(p.Time) > r.Window {
			m.gone[p.ID] = true
		}
	}
	return newly
}

// checkPruned checks the store after a Prune against the model: the
// points listed and which are materializable, the base of each disk (at
// the segment of its oldest kept cut, equal to the model there) and the
// journal files (exactly the retained segments and their indexes).
func checkPruned(t testing.TB, l *Local, m *pruneModel, plans []*timedPlan, applied map[string]int) {
	t.Helper()
	ctx := context.Background()
	pts, err := l.Points(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	dps := make([]*diskPlan, len(plans))
	for i, p := range plans {
		dps[i] = p.diskPlan
	}
	all := make([]string, len(m.pts))
	for i, p := range m.pts {
		all[i] = p.id
	}
	var want []string
	for _, id := range wantPoints(all, dps, applied) {
		if !m.gone[id] {
			want = append(want, id)
		}
	}
	if got := pointIDs(pts); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
	var kept []string
	for _, p := range pts {
		if p.Materializable == m.dropped[p.ID] {
			t.Fatalf("point %s: materializable %v, dropped in the model %v", p.ID, p.Materializable, m.dropped[p.ID])
		}
		if p.Materializable {
			kept = append(kept, p.ID)
		}
	}
	for _, p := range plans {
		dir := l.diskDir(testMachine, p.name)
		baseSeq, err := readBaseSeq(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) > 0 {
			oldest := uint64(1<<64 - 1)
			for _, id := range kept {
				oldest = min(oldest, p.cutSeq[id])
			}
			if baseSeq != oldest {
				t.Fatalf("disk %s: base at segment %d, want %d (the oldest kept cut's)", p.name, baseSeq, oldest)
			}
		}
		base, err := os.ReadFile(filepath.Join(dir, baseImg))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(base, p.segStart[baseSeq]) {
			t.Fatalf("disk %s: base.img differs from the disk before segment %d at byte %d", p.name, baseSeq, firstDiff(base, p.segStart[baseSeq]))
		}
		ents, err := os.ReadDir(filepath.Join(dir, journalDir))
		if err != nil {
			t.Fatal(err)
		}
		var got, wantFiles []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		for seq := baseSeq; seq < uint64(applied[p.name]); seq++ {
			wantFiles = append(wantFiles, hrlfmt.SegmentName(seq), indexName(seq))
		}
		if !slices.Equal(got, wantFiles) {
			t.Fatalf("disk %s: journal holds %v, want %v", p.name, got, wantFiles)
		}
	}
}

// TestPruneModel applies the journals of two disks with points every 20
// minutes over two days, and Prunes at several times while more segments
// come, with a clock set by the test. After each Prune it checks which
// points are listed and materializable, that each disk's base holds the
// disk as it was before the segment of the oldest kept cut and that only
// the later segments are left, and materializes every kept point,
// comparing it byte for byte with the model.
func TestPruneModel(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			start := time.Date(2026, 2, 1, 0, 3, 0, 0, time.UTC)
			tps := everyMinutes(start, 160, 20*time.Minute) // 53 hours
			o := planOpts{maxWrites: 4, maxLen: 16 << 10, hot: 8, zeroProb: 0.15, flushProb: 0.1, splitNote: true}
			plans := []*timedPlan{
				planTimed(rng, "sda", 192<<10, tps, o),
				planTimed(rng, "sdb", 128<<10+512, tps, o),
			}
			segDir := t.TempDir()
			for _, p := range plans {
				writeTimed(t, segDir, p)
			}
			l := openTest(t, t.TempDir())
			if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
				t.Fatal(err)
			}
			m := &pruneModel{pts: tps, dropped: map[string]bool{}, gone: map[string]bool{}}
			applied := map[string]int{}
			r := Retention{Window: 6 * time.Hour, KeepAll: 90 * time.Minute, Thin: time.Hour}
			// Rounds: apply up to the segment of a point on each disk (sdb
			// a little behind, or all), Prune 30 minutes after that point;
			// at the end, days later: the newest point stays.
			totalMerged := 0
			rounds := []struct {
				upto      int
				all, idle bool
			}{{upto: 20}, {upto: 40}, {upto: 41}, {upto: 80}, {upto: 81}, {upto: 120}, {upto: 159, all: true}, {upto: 159, all: true, idle: true}}
			for i, rd := range rounds {
				upTo := map[string]int{
					"sda": int(plans[0].cutSeq[tps[rd.upto].id]) + 1,
					"sdb": int(plans[1].cutSeq[tps[max(rd.upto-3, 0)].id]) + 1,
				}
				if rd.all {
					upTo = map[string]int{"sda": len(plans[0].segs), "sdb": len(plans[1].segs)}
				}
				applyUpTo(t, l, plans, applied, upTo)
				now := tps[rd.upto].time.Add(30 * time.Minute)
				if rd.idle {
					now = now.Add(72 * time.Hour)
				}
				before, _ := l.Points(ctx, testMachine)
				res, err := l.Prune(ctx, testMachine, r, now)
				if err != nil {
					t.Fatal(err)
				}
				dps := []*diskPlan{plans[0].diskPlan, plans[1].diskPlan}
				all := make([]string, len(tps))
				for i, p := range tps {
					all[i] = p.id
				}
				newly := m.prune(wantPoints(all, dps, applied), r, now)
				if !slices.Equal(res.Dropped, newly) {
					t.Fatalf("round %d: dropped %v, want %v", i, res.Dropped, newly)
				}
				totalMerged += res.Merged
				t.Logf("round %d: %d points listed before, dropped %d, merged %d segments (%d bytes)", i, len(before), len(res.Dropped), res.Merged, res.MergedBytes)
				checkPruned(t, l, m, plans, applied)
				if n := checkMaterializeSome(t, l, plans, 4); n == 0 {
					t.Fatalf("round %d: no point materializable", i)
				}
				// Prune again at the same time changes nothing.
				if res, err := l.Prune(ctx, testMachine, r, now); err != nil || res.Merged != 0 || len(res.Dropped) != 0 {
					t.Fatalf("round %d: second prune: %+v, %v", i, res, err)
				}
			}
			if totalMerged == 0 {
				t.Fatal("nothing merged")
			}
			pts, _ := l.Points(ctx, testMachine)
			if len(pts) != 1 || pts[0].ID != tps[len(tps)-1].id || !pts[0].Materializable {
				t.Fatalf("after days idle: points %v, want only the newest", pointIDs(pts))
			}
			// The replica is untouched by all that.
			for _, p := range plans {
				got, _ := os.ReadFile(filepath.Join(l.diskDir(testMachine, p.name), currentImg))
				if !slices.Equal(got, p.final) {
					t.Fatalf("disk %s: replica differs from the model", p.name)
				}
			}
		})
	}
}

// TestPruneErrors checks Prune's arguments.
func TestPruneErrors(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	if _, err := l.Prune(ctx, "m9", Retention{}, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("prune of an unknown machine: %v, want ErrNotFound", err)
	}
	if _, err := l.Prune(ctx, "../x", Retention{}, t0); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("prune of a bad name: %v, want ErrInvalidName", err)
	}
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prune(ctx, testMachine, Retention{Thin: -time.Second}, t0); err == nil {
		t.Fatal("prune with a negative Thin: no error")
	}
	// No point: nothing to do.
	if res, err := l.Prune(ctx, testMachine, Retention{}, t0); err != nil || res.Merged != 0 || len(res.Dropped) != 0 {
		t.Fatalf("prune without points: %+v, %v", res, err)
	}
}

// pruneCrashSetup makes in dir a store with the journals of two disks
// applied, and closes it.
func pruneCrashSetup(t *testing.T, dir string, plans []*timedPlan) {
	t.Helper()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.SetDisks(context.Background(), testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
		t.Fatal(err)
	}
	applyUpTo(t, l, plans, map[string]int{}, map[string]int{"sda": 1 << 30, "sdb": 1 << 30})
}

// copyTree copies the directory tree src to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// diskFiles returns the content of every file of a machine's disks but
// the applied marker (which holds a time), by path.
func diskFiles(t testing.TB, l *Local, disks ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range disks {
		for name, b := range readDiskState(t, l, d).files {
			out[d+"/"+name] = string(b)
		}
	}
	return out
}

// TestPruneCrash stops Prune at each of its steps, as a crash would:
// after marking the dropped cuts of each disk, in the middle of folding a
// segment into the base, after the base is durable but before the marker
// moves, and after the marker moves but before the segment is deleted. It
// reopens the store and checks that every point listed as materializable
// materializes exactly, then Prunes again and checks that the result is
// that of an uninterrupted Prune, file for file.
func TestPruneCrash(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 55))
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tps := everyMinutes(start, 40, 15*time.Minute)
	o := planOpts{maxWrites: 4, maxLen: 16 << 10, hot: 4, zeroProb: 0.2, flushProb: 0.2, splitNote: true}
	plans := []*timedPlan{planTimed(rng, "sda", 128<<10, tps, o), planTimed(rng, "sdb", 96<<10, tps, o)}
	segDir := t.TempDir()
	for _, p := range plans {
		writeTimed(t, segDir, p)
	}
	r := Retention{Window: 4 * time.Hour, KeepAll: time.Hour, Thin: time.Hour}
	now := tps[len(tps)-1].time.Add(10 * time.Minute)

	// The uninterrupted run, recording the stages.
	template := t.TempDir()
	pruneCrashSetup(t, template, plans)
	cleanDir := t.TempDir()
	copyTree(t, template, cleanDir)
	clean := openTest(t, cleanDir)
	var stages []string
	clean.hook = func(s string) error {
		if strings.HasPrefix(s, "prune") {
			stages = append(stages, s)
		}
		return nil
	}
	res, err := clean.Prune(ctx, testMachine, r, now)
	if err != nil {
		t.Fatal(err)
	}
	clean.hook = nil
	if res.Merged < 4 || len(res.Dropped) == 0 {
		t.Fatalf("prune merged %d segments, dropped %v: the test wants more", res.Merged, res.Dropped)
	}
	want := diskFiles(t, clean, "sda", "sdb")
	wantPts, _ := clean.Points(ctx, testMachine)
	checkMaterialize(t, clean, plans)

	// Every marking; and for the first two and the last segment each disk
	// folds: after the middle record of the fold (the first of two), after
	// the base is durable, after the marker moved.
	var crashAt []string
	folded := map[string][]string{}
	records := map[string]int{} // by "disk seq"
	for _, s := range stages {
		f := strings.Fields(s)
		if len(f) == 4 && f[2] == "base" {
			folded[f[1]] = append(folded[f[1]], f[3])
		}
		if len(f) == 6 && f[2] == "fold" {
			records[f[1]+" "+f[3]]++
		}
	}
	for _, s := range stages {
		f := strings.Fields(s)
		if f[1] == "marked" {
			crashAt = append(crashAt, s)
			continue
		}
		segs := folded[f[1]]
		seq := f[3]
		if !slices.Contains([]string{segs[0], segs[1], segs[len(segs)-1]}, seq) {
			continue
		}
		if f[2] != "fold" || f[5] == fmt.Sprint((records[f[1]+" "+seq]-1)/2) {
			crashAt = append(crashAt, s)
		}
	}
	t.Logf("%d stages, crashing at %d", len(stages), len(crashAt))
	for _, stage := range crashAt {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			copyTree(t, template, dir)
			l := openTest(t, dir)
			l.hook = func(s string) error {
				if s == stage {
					return errCrash
				}
				return nil
			}
			if _, err := l.Prune(ctx, testMachine, r, now); !errors.Is(err, errCrash) {
				t.Fatalf("interrupted prune: %v", err)
			}
			l.Close()
			l = openTest(t, dir)
			checkMaterialize(t, l, plans)
			if _, err := l.Prune(ctx, testMachine, r, now); err != nil {
				t.Fatal(err)
			}
			got := diskFiles(t, l, "sda", "sdb")
			for name, b := range want {
				if got[name] != b {
					t.Fatalf("after crash and prune again: %s differs from an uninterrupted prune's", name)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Fatalf("after crash and prune again: %s left over", name)
				}
			}
			pts, _ := l.Points(ctx, testMachine)
			if !slices.EqualFunc(pts, wantPts, func(a, b Point) bool { return a.ID == b.ID && a.Materializable == b.Materializable }) {
				t.Fatalf("points %v, want %v", pts, wantPts)
			}
			checkMaterialize(t, l, plans)
		})
	}
}

// TestMaterializeWhilePruning runs Apply, Prune (with a clock that moves
// on) and Materialize of random points at once, under the race detector:
// every image made must equal the model, and a failure is allowed only as
// ErrPruned, for a point retention dropped meanwhile.
func TestMaterializeWhilePruning(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tps := everyMinutes(start, 80, 5*time.Minute)
	o := planOpts{maxWrites: 4, maxLen: 32 << 10, hot: 8, zeroProb: 0.1, flushProb: 0.2}
	plans := []*timedPlan{planTimed(rng, "sda", 256<<10, tps, o), planTimed(rng, "sdb", 128<<10, tps, o)}
	segDir := t.TempDir()
	for _, p := range plans {
		writeTimed(t, segDir, p)
	}
	dps := []*diskPlan{plans[0].diskPlan, plans[1].diskPlan}
	l := openTest(t, t.TempDir())
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
		t.Fatal(err)
	}
	var (
		wg                    sync.WaitGroup
		done                  = make(chan struct{})
		errs                  = make(chan error, 8)
		materialized, refused atomic.Int64
		merged                atomic.Int64
		appliedAll            atomic.Bool
	)
	for _, p := range plans {
		wg.Go(func() {
			for seq, path := range p.paths {
				if err := l.Apply(ctx, testMachine, p.name, uint64(seq), path); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var bg sync.WaitGroup
	bg.Go(func() {
		r := Retention{Window: 2 * time.Hour, KeepAll: 20 * time.Minute, Thin: 30 * time.Minute}
		for {
			select {
			case <-done:
				return
			default:
			}
			pts, err := l.Points(ctx, testMachine)
			if err != nil {
				errs <- err
				return
			}
			p, ok := LatestPoint(pts, "")
			if !ok {
				continue
			}
			res, err := l.Prune(ctx, testMachine, r, p.Time.Add(time.Minute))
			if err != nil {
				errs <- err
				return
			}
			merged.Add(int64(res.Merged))
		}
	})
	for k := range 2 {
		bg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				pts, err := l.Points(ctx, testMachine)
				if err != nil {
					errs <- err
					return
				}
				var cand []Point
				for _, p := range pts {
					if p.Materializable {
						cand = append(cand, p)
					}
				}
				if len(cand) == 0 {
					continue
				}
				pt := cand[rng.IntN(len(cand))]
				if k == 0 {
					pt = cand[len(cand)-1] // the newest, most often still kept
				}
				out := filepath.Join(t.TempDir(), "out")
				imgs, err := l.Materialize(ctx, testMachine, pt.ID, out)
				if errorsIsPruned(err) {
					refused.Add(1)
					continue
				}
				if errors.Is(err, ErrNotFound) {
					// Aged out of the window and forgotten meanwhile: only
					// if the catalog agrees it is gone.
					now, lerr := l.Points(ctx, testMachine)
					if lerr != nil {
						errs <- lerr
						return
					}
					for _, p := range now {
						if p.ID == pt.ID && p.Materializable {
							errs <- fmt.Errorf("materialize %s: %w, yet it is listed materializable", pt.ID, err)
							return
						}
					}
					refused.Add(1)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("materialize %s: %w", pt.ID, err)
					return
				}
				if err := compareImages(imgs, dps, pt.ID); err != nil {
					errs <- err
					return
				}
				os.RemoveAll(out)
				materialized.Add(1)
				if appliedAll.Load() && materialized.Load() > 40 {
					return
				}
			}
		})
	}
	wg.Wait()
	appliedAll.Store(true)
	// Let the readers and the pruner go on a little over the final state.
	time.Sleep(200 * time.Millisecond)
	close(done)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d materializations, %d refused as pruned, %d segments merged", materialized.Load(), refused.Load(), merged.Load())
	if materialized.Load() == 0 || merged.Load() == 0 {
		t.Fatal("the test did not exercise materialize and merge together")
	}
	checkMaterialize(t, l, plans)
}
