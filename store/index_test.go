package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// TestNewestPieces compares newestPieces with the owner of each byte
// computed byte by byte, on random extents.
func TestNewestPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 500 {
		size := int64(1 + rng.IntN(300))
		exts := make([]indexEntry, rng.IntN(40))
		for i := range exts {
			off := rng.Int64N(size)
			exts[i] = indexEntry{Offset: off, Length: 1 + rng.Int64N(size-off)}
		}
		owner := make([]int, size)
		for i := range owner {
			owner[i] = -1
		}
		for i, e := range exts {
			for b := e.Offset; b < e.Offset+e.Length; b++ {
				owner[b] = i
			}
		}
		got := make([]int, size)
		for i := range got {
			got[i] = -1
		}
		for i, ps := range newestPieces(exts) {
			for k, p := range ps {
				if p.lo >= p.hi || k > 0 && ps[k-1].hi >= p.lo {
					t.Fatalf("iter %d: extent %d: pieces %v not ascending and apart", iter, i, ps)
				}
				for b := p.lo; b < p.hi; b++ {
					if got[b] != -1 {
						t.Fatalf("iter %d: byte %d in two pieces", iter, b)
					}
					got[b] = i
				}
			}
		}
		if !slices.Equal(got, owner) {
			t.Fatalf("iter %d: owners %v, want %v", iter, got, owner)
		}
	}
}

// fullReplay returns a disk at the cut c the simple way: base.img, then
// every record of every segment from the base to the cut, in order.
func fullReplay(t testing.TB, l *Local, disk string, c cutEntry) []byte {
	t.Helper()
	dir := l.diskDir(testMachine, disk)
	img, err := os.ReadFile(filepath.Join(dir, baseImg))
	if err != nil {
		t.Fatal(err)
	}
	img = append(img[:min(int64(len(img)), c.Size)], make([]byte, max(0, c.Size-int64(len(img))))...)
	first, err := readBaseSeq(dir)
	if err != nil {
		t.Fatal(err)
	}
	for seq := first; seq <= c.Seq; seq++ {
		r, err := hrlfmt.OpenSegment(filepath.Join(dir, journalDir, hrlfmt.SegmentName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if err == io.EOF || seq == c.Seq && err == nil && rec.Pos >= c.Pos {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			switch rec.Type {
			case hrlfmt.RecData:
				copy(img[rec.Offset:], rec.Data)
			case hrlfmt.RecZero:
				clear(img[rec.Offset : rec.Offset+rec.Length])
			}
		}
		r.Close()
	}
	return img
}

// overlapping is a plan with many overlapping writes (and zeroes) in many
// segments.
func overlapping(seed uint64, n int) (*timedPlan, []tpoint) {
	rng := rand.New(rand.NewPCG(seed, 99))
	tps := everyMinutes(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), n, time.Minute)
	o := planOpts{maxWrites: 8, maxLen: 24 << 10, hot: 6, zeroProb: 0.15, flushProb: 0.15, splitNote: true}
	return planTimed(rng, "sda", 160<<10+1000, tps, o), tps
}

// TestExtentIndexReplay checks, on journals of many overlapping writes
// across many segments, that every point materialized through the extent
// indexes equals both the model and a plain replay of every record from
// the base, before and after Prunes have moved the base.
func TestExtentIndexReplay(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			p, tps := overlapping(seed, 60)
			writeTimed(t, t.TempDir(), p)
			l := openTest(t, t.TempDir())
			applied := map[string]int{}
			applyUpTo(t, l, []*timedPlan{p}, applied, map[string]int{"sda": 1 << 30})
			check := func(when string) {
				pts, cuts, err := l.points(testMachine)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, pt := range pts {
					if !pt.Materializable {
						continue
					}
					imgs, err := l.Materialize(ctx, testMachine, pt.ID, filepath.Join(t.TempDir(), "out"))
					if err != nil {
						t.Fatal(err)
					}
					got, err := os.ReadFile(imgs[0].Path)
					if err != nil {
						t.Fatal(err)
					}
					if want := fullReplay(t, l, "sda", cuts["sda"][pt.ID]); !bytes.Equal(got, want) {
						t.Fatalf("%s: point %s: indexed replay differs from the full replay at byte %d", when, pt.ID, firstDiff(got, want))
					}
					if want := p.snap[pt.ID]; !bytes.Equal(got, want) {
						t.Fatalf("%s: point %s: differs from the model at byte %d", when, pt.ID, firstDiff(got, want))
					}
					os.Remove(imgs[0].Path)
					n++
				}
				t.Logf("%s: %d points checked", when, n)
			}
			check("before prune")
			for _, back := range []int{40, 20, 5} {
				now := tps[len(tps)-1-back].time
				if _, err := l.Prune(ctx, testMachine, Retention{Window: 10 * time.Minute, KeepAll: 3 * time.Minute, Thin: 4 * time.Minute}, now); err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("after prune at point %d", len(tps)-1-back))
			}
		})
	}
}

// segRecord is where a record lies in a segment.
type segRecord struct {
	seq       uint64
	pos, size int64
	rec       hrlfmt.Record
}

// readJournal returns the records of a disk's journal segments first..last
// and the size of each header record.
func readJournal(t testing.TB, l *Local, disk string, first, last uint64) ([]segRecord, map[uint64]int64) {
	t.Helper()
	var out []segRecord
	hdrs := map[uint64]int64{}
	for seq := first; seq <= last; seq++ {
		r, err := hrlfmt.OpenSegment(filepath.Join(l.diskDir(testMachine, disk), journalDir, hrlfmt.SegmentName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		hdrs[seq] = r.Offset()
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, segRecord{seq, rec.Pos, r.Offset() - rec.Pos, rec})
		}
		r.Close()
	}
	return out, hdrs
}

// TestMaterializeReadsNewestOnly counts, through a test hook, the bytes
// Materialize reads from the journal: exactly the header of each segment
// it needs, the point's CUT record, and each DATA record that holds the
// newest version of some byte at the point (found here byte by byte),
// each once; no ZERO record, no record overwritten, nothing after the cut.
func TestMaterializeReadsNewestOnly(t *testing.T) {
	ctx := context.Background()
	p, tps := overlapping(7, 80)
	writeTimed(t, t.TempDir(), p)
	l := openTest(t, t.TempDir())
	applyUpTo(t, l, []*timedPlan{p}, map[string]int{}, map[string]int{"sda": 1 << 30})
	for _, prune := range []bool{false, true} {
		if prune {
			if _, err := l.Prune(ctx, testMachine, Retention{Window: 30 * time.Minute, KeepAll: 10 * time.Minute, Thin: 10 * time.Minute}, tps[len(tps)-1].time); err != nil {
				t.Fatal(err)
			}
		}
		pts, cuts, err := l.points(testMachine)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := readBaseSeq(l.diskDir(testMachine, "sda"))
		for _, pt := range pts {
			if !pt.Materializable {
				continue
			}
			c := cuts["sda"][pt.ID]
			recs, hdrs := readJournal(t, l, "sda", first, c.Seq)
			size := c.Size
			owner := make([]int, size)
			for i := range owner {
				owner[i] = -1
			}
			journal := int64(0)
			for i, r := range recs {
				if r.seq == c.Seq && r.pos >= c.Pos {
					break
				}
				journal += r.size
				if r.rec.Type == hrlfmt.RecData || r.rec.Type == hrlfmt.RecZero {
					for b := r.rec.Offset; b < r.rec.Offset+r.rec.Length; b++ {
						owner[b] = i
					}
				}
			}
			// The ranges that must be read, each once.
			owns := make([]bool, len(recs))
			for _, i := range owner {
				if i >= 0 {
					owns[i] = true
				}
			}
			want := map[uint64][]span{}
			for i, r := range recs {
				if r.rec.Type == hrlfmt.RecData && owns[i] {
					want[r.seq] = append(want[r.seq], span{r.pos, r.pos + r.size})
				}
			}
			want[c.Seq] = append(want[c.Seq], span{c.Pos, c.Pos + cutRecordFixed + int64(len(c.ID))})
			for seq := range want {
				want[seq] = append(want[seq], span{0, hdrs[seq]})
			}
			got := map[uint64][]int{} // bytes read, by segment and offset
			var total int64
			l.readHook = func(disk string, seq uint64, off int64, n int) {
				if got[seq] == nil {
					fi, _ := os.Stat(filepath.Join(l.diskDir(testMachine, disk), journalDir, hrlfmt.SegmentName(seq)))
					got[seq] = make([]int, fi.Size())
				}
				for b := off; b < off+int64(n); b++ {
					got[seq][b]++
				}
				total += int64(n)
			}
			imgs, err := l.Materialize(ctx, testMachine, pt.ID, t.TempDir())
			l.readHook = nil
			if err != nil {
				t.Fatal(err)
			}
			checkImages(t, imgs, []*diskPlan{p.diskPlan}, pt.ID)
			var wantTotal int64
			for seq, spans := range want {
				cover := make([]int, len(got[seq]))
				for _, s := range spans {
					for b := s.lo; b < s.hi; b++ {
						cover[b]++
					}
					wantTotal += s.hi - s.lo
				}
				if !slices.Equal(got[seq], cover) {
					t.Fatalf("point %s: segment %d: bytes read differ from the newest records' (first at %d)", pt.ID, seq, firstDiffInts(got[seq], cover))
				}
			}
			for seq := range got {
				if _, ok := want[seq]; !ok {
					t.Fatalf("point %s: read segment %d, which holds no newest record", pt.ID, seq)
				}
			}
			if total != wantTotal {
				t.Fatalf("point %s: read %d bytes, want %d", pt.ID, total, wantTotal)
			}
			if pt.ID == tps[len(tps)-1].id {
				t.Logf("prune %v: newest point: read %d of the %d journal bytes up to the cut", prune, total, journal)
			}
		}
	}
}

func firstDiffInts(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestExtentIndexFiles checks that the index Apply writes is the one a
// scan of the segment gives, that a missing index is rebuilt from the
// segment (the image stays right), and that a damaged index, or one that
// does not match its segment, is an error naming it.
func TestExtentIndexFiles(t *testing.T) {
	ctx := context.Background()
	p, tps := overlapping(9, 20)
	writeTimed(t, t.TempDir(), p)
	l := openTest(t, t.TempDir())
	applyUpTo(t, l, []*timedPlan{p}, map[string]int{}, map[string]int{"sda": 1 << 30})
	jdir := filepath.Join(l.diskDir(testMachine, "sda"), journalDir)
	for seq := range p.segs {
		b, err := os.ReadFile(filepath.Join(jdir, indexName(uint64(seq))))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(filepath.Join(jdir, hrlfmt.SegmentName(uint64(seq))))
		x, err := scanIndex(f, f.Name(), testMachine, "sda", uint64(seq))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, x.marshal()) {
			t.Fatalf("segment %d: index differs from a scan of the segment", seq)
		}
		y, err := unmarshalIndex(b, uint64(seq))
		if err != nil || !slices.Equal(y.Entries, x.Entries) || y.SegSize != x.SegSize || y.HeaderLen != x.HeaderLen {
			t.Fatalf("segment %d: index does not decode to itself: %v", seq, err)
		}
		if _, err := unmarshalIndex(b, uint64(seq)+1); err == nil {
			t.Fatalf("segment %d: index accepted for another segment", seq)
		}
	}
	last := tps[len(tps)-1].id
	victim := p.cutSeq[last]
	idx := filepath.Join(jdir, indexName(victim))
	good, _ := os.ReadFile(idx)

	// Missing: rebuilt by reading the whole segment.
	os.Remove(idx)
	var read int64
	l.readHook = func(disk string, seq uint64, off int64, n int) {
		if seq == victim {
			read += int64(n)
		}
	}
	imgs, err := l.Materialize(ctx, testMachine, last, t.TempDir())
	l.readHook = nil
	if err != nil {
		t.Fatal(err)
	}
	checkImages(t, imgs, []*diskPlan{p.diskPlan}, last)
	if fi, _ := os.Stat(filepath.Join(jdir, hrlfmt.SegmentName(victim))); read < fi.Size() {
		t.Fatalf("without an index, read %d bytes of a segment of %d", read, fi.Size())
	}

	// Damaged, or of another segment size.
	flip := slices.Clone(good)
	flip[len(flip)/2] ^= 0x10
	other, _ := unmarshalIndex(good, victim)
	other.SegSize++
	for name, b := range map[string][]byte{"bit flip": flip, "truncated": good[:len(good)-7], "size": other.marshal(), "empty": nil} {
		if err := os.WriteFile(idx, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		_, err := l.Materialize(ctx, testMachine, last, out)
		if err == nil || !strings.Contains(err.Error(), indexName(victim)) {
			t.Fatalf("%s index: %v, want an error naming it", name, err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Fatalf("%s index: left %v", name, ents)
		}
	}
	if err := os.WriteFile(idx, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Materialize(ctx, testMachine, last, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
