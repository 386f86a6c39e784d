package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// tpoint is a point of a timed plan.
type tpoint struct {
	id   string
	time time.Time
	kind hrlfmt.CutKind
	note *hrlfmt.Note // written just before the cut, if not nil
}

// planOpts shape the journal of a timed plan.
type planOpts struct {
	maxWrites int     // at most this many DATA or ZERO records before each cut
	maxLen    int64   // longest extent
	hot       int     // with probability 1/2 an extent starts at one of hot 4 KiB-aligned places (0: never)
	zeroProb  float64 // probability that a record is a ZERO
	flushProb float64 // probability that a segment ends after a record or a cut
	splitNote bool    // end the segment between a point's NOTE and its CUT, now and then
}

// timedPlan is a diskPlan whose points have given times, with the model
// of the disk at the start of each segment.
type timedPlan struct {
	*diskPlan
	segStart [][]byte
}

// planTimed makes the journal of a disk of size bytes with a cut for each
// point of pts, in order, and the model of the disk at each cut.
func planTimed(rng *rand.Rand, name string, size int64, pts []tpoint, o planOpts) *timedPlan {
	tp := &timedPlan{diskPlan: &diskPlan{name: name, snap: map[string][]byte{}, cutSeq: map[string]uint64{}}}
	p := tp.diskPlan
	model := make([]byte, size)
	start := slices.Clone(model)
	cur := segSpec{size: size}
	flush := func() {
		if len(cur.recs) > 0 {
			p.segs = append(p.segs, cur)
			tp.segStart = append(tp.segStart, start)
			start = slices.Clone(model)
		}
		cur = segSpec{size: size}
	}
	gen := uint64(1)
	for k, pt := range pts {
		for range rng.IntN(o.maxWrites + 1) {
			var off int64
			if o.hot > 0 && rng.IntN(2) == 0 {
				off = min(int64(rng.IntN(o.hot))*4096+rng.Int64N(512), size-1)
			} else {
				off = rng.Int64N(size)
			}
			n := 1 + rng.Int64N(min(o.maxLen, size-off))
			if rng.Float64() < o.zeroProb {
				cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecZero, Offset: off, Length: n, Gen: gen, Reason: hrlfmt.ZeroDiscarded})
				clear(model[off : off+n])
			} else {
				data := make([]byte, n)
				if rng.IntN(2) == 0 {
					for i := range data {
						data[i] = byte(rng.UintN(256))
					}
				} else {
					for i := range data {
						data[i] = byte(k + i/512 + 1)
					}
				}
				cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: n, Gen: gen, Data: data})
				copy(model[off:], data)
			}
			if rng.Float64() < o.flushProb {
				flush()
			}
		}
		gen++
		if pt.note != nil {
			cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecNote, Note: pt.note})
			if o.splitNote && (o.flushProb >= 1 || rng.IntN(2) == 0) {
				flush()
			}
		}
		c := hrlfmt.Cut{Kind: pt.kind, Gen: gen, Time: pt.time, PointID: pt.id}
		cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecCut, Gen: gen, Cut: &c})
		p.cutSeq[pt.id] = uint64(len(p.segs))
		p.snap[pt.id] = slices.Clone(model)
		if rng.Float64() < o.flushProb || rng.IntN(2) == 0 {
			flush()
		}
	}
	off := rng.Int64N(size)
	cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: 1, Gen: gen, Data: []byte{0xee}})
	model[off] = 0xee
	flush()
	p.final = model
	return tp
}

// writeTimed writes the segments of p into dir, NOTE records included.
func writeTimed(t testing.TB, dir string, p *timedPlan) {
	t.Helper()
	for i, s := range p.segs {
		path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.hrl", testMachine, p.name, i))
		w, err := hrlfmt.CreateSegment(path, hrlfmt.Header{Machine: testMachine, Disk: p.name, DiskSize: s.size, Seq: uint64(i), Created: t0})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range s.recs {
			switch r.Type {
			case hrlfmt.RecData:
				err = w.WriteData(r.Offset, r.Gen, r.Data)
			case hrlfmt.RecZero:
				err = w.WriteZero(r.Offset, r.Length, r.Gen, r.Reason)
			case hrlfmt.RecCut:
				err = w.WriteCut(*r.Cut)
			case hrlfmt.RecNote:
				err = w.WriteNote(*r.Note)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p.paths = append(p.paths, path)
	}
}

// everyMinutes returns n points, the first at start and each next one
// step later, crash-consistent but for every fifth, app-consistent with a
// note.
func everyMinutes(start time.Time, n int, step time.Duration) []tpoint {
	pts := make([]tpoint, n)
	for i := range pts {
		pts[i] = tpoint{id: fmt.Sprintf("p%03d", i), time: start.Add(time.Duration(i) * step), kind: hrlfmt.CutCrash}
		if i%5 == 4 {
			pts[i].kind = hrlfmt.CutApp
			pts[i].note = &hrlfmt.Note{PointID: pts[i].id, Freeze: time.Duration(i) * time.Millisecond, Text: fmt.Sprintf(`{"point":%d}`, i)}
		}
	}
	return pts
}

// applyUpTo applies the segments of each plan until applied[name] of them
// are, interleaving the disks.
func applyUpTo(t testing.TB, l *Local, plans []*timedPlan, applied map[string]int, upTo map[string]int) {
	t.Helper()
	ctx := context.Background()
	for {
		progress := false
		for _, p := range plans {
			if applied[p.name] < min(upTo[p.name], len(p.segs)) {
				seq := applied[p.name]
				if err := l.Apply(ctx, testMachine, p.name, uint64(seq), p.paths[seq]); err != nil {
					t.Fatal(err)
				}
				applied[p.name]++
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

// checkMaterialize materializes every materializable point listed and
// compares each image with the model; a point that is not materializable
// must fail with ErrPruned. It returns the number of images checked.
func checkMaterialize(t testing.TB, l *Local, plans []*timedPlan) int {
	t.Helper()
	return checkMaterializeSome(t, l, plans, 1)
}

// checkMaterializeSome is checkMaterialize for the oldest and the newest
// materializable point and every one in every.
func checkMaterializeSome(t testing.TB, l *Local, plans []*timedPlan, every int) int {
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
	var live []int
	for i, pt := range pts {
		if pt.Materializable {
			live = append(live, i)
		}
	}
	n := 0
	for i, pt := range pts {
		if k := slices.Index(live, i); k > 0 && k < len(live)-1 && k%every != 0 {
			continue
		}
		out := filepath.Join(t.TempDir(), "out")
		imgs, err := l.Materialize(ctx, testMachine, pt.ID, out)
		if !pt.Materializable {
			if !errorsIsPruned(err) {
				t.Fatalf("materialize dropped point %s: %v, want ErrPruned", pt.ID, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("materialize %s: %v", pt.ID, err)
		}
		checkImages(t, imgs, dps, pt.ID)
		for _, img := range imgs {
			os.Remove(img.Path)
		}
		n++
	}
	return n
}
