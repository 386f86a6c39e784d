package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

const testMachine = "m1"

var t0 = time.Unix(1_700_000_000, 0).UTC()

// segSpec is one segment to write: its header's disk size and its records
// (DATA, ZERO and CUT, with the fields of hrlfmt.Record as arguments).
type segSpec struct {
	size int64
	recs []hrlfmt.Record
}

// diskPlan is the journal of one disk and an in-memory model of the disk.
type diskPlan struct {
	name   string
	segs   []segSpec
	paths  []string          // the written segments, by sequence number
	snap   map[string][]byte // the disk at each of its cuts, by point id
	cutSeq map[string]uint64 // the segment of each of its cuts
	final  []byte            // the disk after every segment
}

// cutKinds are the kinds the plans use in turn.
var cutKinds = []hrlfmt.CutKind{hrlfmt.CutCrash, hrlfmt.CutApp, hrlfmt.CutCrash, hrlfmt.CutGroup}

// planDisk makes the journal of a disk of size bytes: for each point id,
// a few random writes and zeroes then the point's cut, unless skip says
// the disk misses that point. At growAt (a point index, -1 for never) the
// disk grows to growTo, in a new segment. Segments end at random, often
// right after a cut.
func planDisk(rng *rand.Rand, name string, size int64, points []string, skip map[string]bool, growAt int, growTo int64) *diskPlan {
	p := &diskPlan{name: name, snap: map[string][]byte{}, cutSeq: map[string]uint64{}}
	model := make([]byte, size)
	cur := segSpec{size: size}
	flush := func() {
		if len(cur.recs) > 0 {
			p.segs = append(p.segs, cur)
		}
		cur = segSpec{size: int64(len(model))}
	}
	gen := uint64(1)
	for k, id := range points {
		if k == growAt {
			flush()
			model = append(model, make([]byte, growTo-int64(len(model)))...)
			cur.size = growTo
		}
		for range rng.IntN(6) {
			size := int64(len(model))
			off := rng.Int64N(size)
			n := 1 + rng.Int64N(min(64<<10, size-off))
			if rng.IntN(4) == 0 {
				reason := hrlfmt.ZeroZeroed
				if rng.IntN(2) == 0 {
					reason = hrlfmt.ZeroDiscarded
				}
				cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecZero, Offset: off, Length: n, Gen: gen, Reason: reason})
				clear(model[off : off+n])
			} else {
				data := make([]byte, n)
				if rng.IntN(2) == 0 {
					for i := range data {
						data[i] = byte(rng.UintN(256))
					}
				} else {
					for i := range data {
						data[i] = byte(k + i/512) // compressible
					}
				}
				cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: n, Gen: gen, Data: data})
				copy(model[off:], data)
			}
			if rng.IntN(5) == 0 {
				flush()
			}
		}
		gen++
		if skip[id] {
			continue
		}
		c := hrlfmt.Cut{Kind: cutKinds[k%len(cutKinds)], Gen: gen, Time: t0.Add(time.Duration(k) * time.Second), PointID: id}
		cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecCut, Gen: gen, Cut: &c})
		p.cutSeq[id] = uint64(len(p.segs))
		p.snap[id] = slices.Clone(model)
		if rng.IntN(2) == 0 {
			flush()
		}
	}
	// Changes after the last cut, in a segment of their own or not.
	off := rng.Int64N(int64(len(model)) - 1)
	cur.recs = append(cur.recs, hrlfmt.Record{Type: hrlfmt.RecData, Offset: off, Length: 1, Gen: gen, Data: []byte{0xee}})
	model[off] = 0xee
	flush()
	p.final = model
	return p
}

// writeSegment writes a segment file in dir and returns its path.
func writeSegment(t testing.TB, dir, machine, disk string, seq uint64, s segSpec) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.hrl", machine, disk, seq))
	w, err := hrlfmt.CreateSegment(path, hrlfmt.Header{Machine: machine, Disk: disk, DiskSize: s.size, Seq: seq, Created: t0})
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
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePlan writes the segments of p into dir.
func writePlan(t testing.TB, dir string, p *diskPlan) {
	t.Helper()
	for i, s := range p.segs {
		p.paths = append(p.paths, writeSegment(t, dir, testMachine, p.name, uint64(i), s))
	}
}

func openTest(t testing.TB, dir string) *Local {
	t.Helper()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// wantPoints returns the ids of the points listed when applied[d] segments
// of each disk of the disk set plans are applied (in point order).
func wantPoints(points []string, plans []*diskPlan, applied map[string]int) []string {
	if len(plans) == 0 {
		return nil
	}
	var ids []string
	for _, id := range points {
		ok := true
		for _, p := range plans {
			seq, has := p.cutSeq[id]
			if !has || int(seq) >= applied[p.name] {
				ok = false
			}
		}
		if ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func pointIDs(pts []Point) []string {
	ids := make([]string, len(pts))
	for i, p := range pts {
		ids[i] = p.ID
	}
	return ids
}

// checkImages compares materialized images with the plans' models at the
// point.
func checkImages(t testing.TB, imgs []Image, plans []*diskPlan, id string) {
	t.Helper()
	if err := compareImages(imgs, plans, id); err != nil {
		t.Fatal(err)
	}
}

// compareImages is checkImages for any goroutine.
func compareImages(imgs []Image, plans []*diskPlan, id string) error {
	if len(imgs) != len(plans) {
		return fmt.Errorf("point %s: %d images, want %d", id, len(imgs), len(plans))
	}
	for i, p := range plans {
		img := imgs[i]
		if img.Disk != p.name {
			return fmt.Errorf("point %s: image %d is of disk %s, want %s", id, i, img.Disk, p.name)
		}
		got, err := os.ReadFile(img.Path)
		if err != nil {
			return err
		}
		want := p.snap[id]
		if img.Size != int64(len(want)) || len(got) != len(want) {
			return fmt.Errorf("point %s disk %s: size %d, file %d bytes, want %d", id, p.name, img.Size, len(got), len(want))
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("point %s disk %s: content differs from the model at byte %d", id, p.name, firstDiff(got, want))
		}
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func pointNames(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("point-%02d", i)
	}
	return ids
}

// TestApplyMaterializeModel applies the random journals of three disks,
// interleaved, checks after every segment that exactly the points cut on
// every disk are listed, and materializes every point, comparing each
// image byte for byte with the model of the disk at the cut.
func TestApplyMaterializeModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			points := pointNames(12)
			segDir := t.TempDir()
			plans := []*diskPlan{
				// sda misses point-04: never listed.
				planDisk(rng, "sda", 1<<20, points, map[string]bool{"point-04": true}, -1, 0),
				planDisk(rng, "sdb", 768<<10+512, points, nil, 5, 1<<20+4096),
				// nvme0n1 misses point-09.
				planDisk(rng, "nvme0n1", 2<<20, points, map[string]bool{"point-09": true}, -1, 0),
			}
			for _, p := range plans {
				writePlan(t, segDir, p)
			}
			slices.SortFunc(plans, func(a, b *diskPlan) int { return strings.Compare(a.name, b.name) })
			ctx := context.Background()
			l := openTest(t, t.TempDir())
			// Seed 2 never calls SetDisks: the disk set is then the disks
			// that have a journal.
			setDisks := seed != 2
			if setDisks {
				if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}, {Name: "nvme0n1"}}); err != nil {
					t.Fatal(err)
				}
			}
			applied := map[string]int{}
			for {
				var left []*diskPlan
				for _, p := range plans {
					if applied[p.name] < len(p.segs) {
						left = append(left, p)
					}
				}
				if len(left) == 0 {
					break
				}
				p := left[rng.IntN(len(left))]
				seq := applied[p.name]
				if err := l.Apply(ctx, testMachine, p.name, uint64(seq), p.paths[seq]); err != nil {
					t.Fatal(err)
				}
				applied[p.name]++
				pts, err := l.Points(ctx, testMachine)
				if err != nil {
					t.Fatal(err)
				}
				set := plans
				if !setDisks {
					set = slices.DeleteFunc(slices.Clone(plans), func(p *diskPlan) bool { return applied[p.name] == 0 })
				}
				if got, want := pointIDs(pts), wantPoints(points, set, applied); !slices.Equal(got, want) {
					t.Fatalf("after %s segment %d: points %v, want %v", p.name, seq, got, want)
				}
			}
			pts, err := l.Points(ctx, testMachine)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := pointIDs(pts), wantPoints(points, plans, applied); !slices.Equal(got, want) || len(got) != 10 {
				t.Fatalf("points %v, want %v (10)", got, want)
			}
			for _, pt := range pts {
				k := slices.Index(points, pt.ID)
				if pt.Kind != cutKinds[k%len(cutKinds)].String() || !pt.Time.Equal(t0.Add(time.Duration(k)*time.Second)) ||
					pt.Gen != uint64(k+2) || !slices.Equal(pt.Disks, []string{"nvme0n1", "sda", "sdb"}) {
					t.Fatalf("point %+v: wrong kind, time, generation or disks", pt)
				}
				imgs, err := l.Materialize(ctx, testMachine, pt.ID, filepath.Join(t.TempDir(), "out"))
				if err != nil {
					t.Fatal(err)
				}
				checkImages(t, imgs, plans, pt.ID)
			}
			// The replicas are the disks after every segment.
			for _, p := range plans {
				got, err := os.ReadFile(filepath.Join(l.diskDir(testMachine, p.name), currentImg))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, p.final) {
					t.Fatalf("disk %s: replica differs from the model at byte %d", p.name, firstDiff(got, p.final))
				}
			}
			disks, err := l.Disks(ctx, testMachine)
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range disks {
				p := plans[i]
				if d.Name != p.name || !d.Applied || d.AppliedSeq != uint64(len(p.segs)-1) || d.Size != int64(len(p.final)) {
					t.Fatalf("disk %+v, want %s applied up to %d, size %d", d, p.name, len(p.segs)-1, len(p.final))
				}
			}
			// Unlisted and unknown points are not found.
			for _, id := range []string{"point-04", "point-09", "nope"} {
				if _, err := l.Materialize(ctx, testMachine, id, t.TempDir()); !errors.Is(err, ErrNotFound) {
					t.Fatalf("materialize %s: %v, want ErrNotFound", id, err)
				}
			}

			// SetDisks decides which disks a point needs.
			if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda", Size: 1 << 20}, {Name: "sdb"}}); err != nil {
				t.Fatal(err)
			}
			pts, err = l.Points(ctx, testMachine)
			if err != nil {
				t.Fatal(err)
			}
			if got := pointIDs(pts); len(got) != 11 || slices.Contains(got, "point-04") {
				t.Fatalf("points of sda and sdb: %v, want all but point-04", got)
			}
			imgs, err := l.Materialize(ctx, testMachine, "point-09", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			checkImages(t, imgs, plans[1:], "point-09")
			if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}, {Name: "sdc", Size: 1 << 30}}); err != nil {
				t.Fatal(err)
			}
			if pts, err := l.Points(ctx, testMachine); err != nil || len(pts) != 0 {
				t.Fatalf("points with a disk that has no journal: %v, %v; want none", pts, err)
			}
			disks, err = l.Disks(ctx, testMachine)
			if err != nil {
				t.Fatal(err)
			}
			if len(disks) != 4 || disks[3].Name != "sdc" || disks[3].Applied || disks[3].Size != 1<<30 {
				t.Fatalf("disks %+v: want four, sdc not applied, of 1 GiB", disks)
			}
			if ms, err := l.Machines(ctx); err != nil || !slices.Equal(ms, []string{testMachine}) {
				t.Fatalf("machines %v, %v", ms, err)
			}
		})
	}
}

// diskState is everything the store keeps of a disk, for comparisons.
type diskState struct {
	files map[string][]byte // relative path → content, but for the applied time
}

func readDiskState(t testing.TB, l *Local, disk string) diskState {
	t.Helper()
	dir := l.diskDir(testMachine, disk)
	st := diskState{files: map[string][]byte{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == appliedFile {
			s, _, err := readApplied(dir)
			if err != nil {
				return err
			}
			b = fmt.Appendf(nil, "%d %d", s.Seq, s.Size)
		}
		st.files[rel] = b
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return st
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s diskState) equal(o diskState) string {
	for name, b := range s.files {
		ob, ok := o.files[name]
		if !ok {
			return name + " vanished"
		}
		if !bytes.Equal(b, ob) {
			return name + " changed"
		}
	}
	for name := range o.files {
		if _, ok := s.files[name]; !ok {
			return name + " appeared"
		}
	}
	return ""
}

// smallPlan is a journal of one disk, sda, of four segments with cuts.
func smallPlan(t testing.TB, seed uint64) *diskPlan {
	rng := rand.New(rand.NewPCG(seed, 7))
	var p *diskPlan
	for p == nil || len(p.segs) < 4 {
		p = planDisk(rng, "sda", 256<<10, pointNames(8), nil, -1, 0)
	}
	writePlan(t, t.TempDir(), p)
	return p
}

// TestApplyIdempotentAndOrdered checks that a sequence number applied
// again changes nothing, and that a gap is ErrOutOfOrder and changes
// nothing.
func TestApplyIdempotentAndOrdered(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 1)
	l := openTest(t, t.TempDir())
	if err := l.Apply(ctx, testMachine, "sda", 1, p.paths[1]); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("first segment 1: %v, want ErrOutOfOrder", err)
	}
	if ms, _ := l.Machines(ctx); len(ms) != 0 {
		t.Fatalf("a refused segment created machine %v", ms)
	}
	for seq := range 2 {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	before := readDiskState(t, l, "sda")
	for _, seq := range []uint64{1, 0, 1} {
		// Even another file: an applied sequence number is not read.
		if err := l.Apply(ctx, testMachine, "sda", seq, p.paths[3]); err != nil {
			t.Fatalf("apply %d again: %v", seq, err)
		}
	}
	if d := before.equal(readDiskState(t, l, "sda")); d != "" {
		t.Fatalf("applying again: %s", d)
	}
	for _, seq := range []uint64{3, 1 << 40} {
		err := l.Apply(ctx, testMachine, "sda", seq, p.paths[3])
		if !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("apply %d after 1: %v, want ErrOutOfOrder", seq, err)
		}
	}
	if d := before.equal(readDiskState(t, l, "sda")); d != "" {
		t.Fatalf("out of order: %s", d)
	}
	for seq := 2; seq < len(p.segs); seq++ {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(filepath.Join(l.diskDir(testMachine, "sda"), currentImg))
	if !bytes.Equal(got, p.final) {
		t.Fatalf("replica differs from the model at byte %d", firstDiff(got, p.final))
	}
}

// corrupt returns a copy of the segment at path, in a new file, with the
// byte at off (from the start of the second record when fromRecord)
// flipped, or truncated to off when truncate.
func corruptCopy(t testing.TB, path string, off int64, truncate bool) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		b = b[:off]
	} else {
		b[off] ^= 0x40
	}
	out := filepath.Join(t.TempDir(), "bad.hrl")
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// recordPos returns the byte offset of record i (after the header) of the
// segment at path.
func recordPos(t testing.TB, path string, i int) int64 {
	t.Helper()
	r, err := hrlfmt.OpenSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for k := 0; ; k++ {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("segment %s has no record %d: %v", path, i, err)
		}
		if k == i {
			return rec.Pos
		}
	}
}

// TestApplyRejectsBadSegments checks that a corrupt or truncated segment,
// or one of another machine, disk or sequence number, is an error that
// changes nothing: not the replica, not the journal, not the marker.
func TestApplyRejectsBadSegments(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 2)
	l := openTest(t, t.TempDir())
	for seq := range 2 {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	before := readDiskState(t, l, "sda")
	good := p.paths[2]
	fi, err := os.Stat(good)
	if err != nil {
		t.Fatal(err)
	}
	// A segment with at least two records: corrupt the last one, so that
	// records before it are good.
	last := len(p.segs[2].recs) - 1
	lastPos := recordPos(t, good, last)
	spec := p.segs[2]
	cases := []struct {
		name    string
		path    string
		seq     uint64
		wantErr error
	}{
		{"bit flip in the last record", corruptCopy(t, good, lastPos+hrlfmt.RecordHeaderSize+3, false), 2, hrlfmt.ErrCorrupt},
		{"bit flip in the trailer", corruptCopy(t, good, fi.Size()-5, false), 2, errFormat},
		{"truncated inside the last record", corruptCopy(t, good, lastPos+10, true), 2, hrlfmt.ErrTorn},
		{"no trailer", corruptCopy(t, good, fi.Size()-56, true), 2, hrlfmt.ErrTorn},
		{"empty", corruptCopy(t, good, 0, true), 2, hrlfmt.ErrTorn},
		{"missing", filepath.Join(t.TempDir(), "nope.hrl"), 2, fs.ErrNotExist},
		{"other machine", writeSegment(t, t.TempDir(), "m2", "sda", 2, spec), 2, nil},
		{"other disk", writeSegment(t, t.TempDir(), testMachine, "sdb", 2, spec), 2, nil},
		{"other sequence number", writeSegment(t, t.TempDir(), testMachine, "sda", 3, spec), 2, nil},
		{"data after the trailer", func() string {
			b, _ := os.ReadFile(good)
			out := filepath.Join(t.TempDir(), "long.hrl")
			os.WriteFile(out, append(b, 1, 2, 3), 0o600)
			return out
		}(), 2, hrlfmt.ErrCorrupt},
	}
	for _, c := range cases {
		err := l.Apply(ctx, testMachine, "sda", c.seq, c.path)
		if err == nil {
			t.Fatalf("%s: applied", c.name)
		}
		var fe *hrlfmt.FormatError
		if c.wantErr == errFormat && !errors.As(err, &fe) || c.wantErr != nil && c.wantErr != errFormat && !errors.Is(err, c.wantErr) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.wantErr)
		}
		t.Logf("%s: %v", c.name, err)
		if d := before.equal(readDiskState(t, l, "sda")); d != "" {
			t.Fatalf("%s: %s", c.name, d)
		}
	}
	// The good segment applies after all that.
	for seq := 2; seq < len(p.segs); seq++ {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(filepath.Join(l.diskDir(testMachine, "sda"), currentImg))
	if !bytes.Equal(got, p.final) {
		t.Fatalf("replica differs from the model at byte %d", firstDiff(got, p.final))
	}
	// A corrupt journal copy fails materialize instead of giving a wrong
	// image. Materialize reads only the records that hold the newest
	// version of some byte (see TestMaterializeReadsNewestOnly): flip a
	// byte in the middle of the largest read it makes.
	pts, err := l.Points(ctx, testMachine)
	if err != nil || len(pts) == 0 {
		t.Fatalf("points %v, %v", pts, err)
	}
	var big struct {
		seq uint64
		off int64
		n   int
	}
	l.readHook = func(disk string, seq uint64, off int64, n int) {
		if n > big.n {
			big.seq, big.off, big.n = seq, off, n
		}
	}
	if _, err := l.Materialize(ctx, testMachine, pts[len(pts)-1].ID, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	l.readHook = nil
	seg := filepath.Join(l.diskDir(testMachine, "sda"), journalDir, hrlfmt.SegmentName(big.seq))
	b, _ := os.ReadFile(seg)
	b[big.off+int64(big.n)/2] ^= 1
	os.Chmod(seg, 0o600)
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = l.Materialize(ctx, testMachine, pts[len(pts)-1].ID, out)
	if err == nil {
		t.Fatal("materialized from a corrupt journal")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("failed materialize left %v", ents)
	}
}

var errCrash = errors.New("simulated crash")

// errFormat, as an expected error, stands for any *hrlfmt.FormatError.
var errFormat = errors.New("any format error")

// TestApplyCrash interrupts Apply of a segment at each stage, as a crash
// would, reopens the store and applies the segment again: the result must
// be that of an uninterrupted run, and before the retry nothing of the
// interrupted segment may be listed.
func TestApplyCrash(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 3)
	// The segment to interrupt: one with a cut and a few records.
	victim := -1
	for i := 1; i < len(p.segs); i++ {
		if len(p.segs[i].recs) >= 3 && slices.ContainsFunc(p.segs[i].recs, func(r hrlfmt.Record) bool { return r.Type == hrlfmt.RecCut }) {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatal("no segment with a cut and three records in the plan")
	}
	cleanDir := t.TempDir()
	clean := openTest(t, cleanDir)
	for seq := range p.segs {
		if err := clean.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	want := readDiskState(t, clean, "sda")
	wantPts, _ := clean.Points(ctx, testMachine)

	stages := []string{"imported", "record 0", "record 1", "record 2", "records", "index", "cuts"}
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			for seq := range victim {
				if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := l.Points(ctx, testMachine)
			l.hook = func(s string) error {
				if s == stage {
					return errCrash
				}
				return nil
			}
			if err := l.Apply(ctx, testMachine, "sda", uint64(victim), p.paths[victim]); !errors.Is(err, errCrash) {
				t.Fatalf("interrupted apply: %v", err)
			}
			l.Close()
			l = openTest(t, dir)
			if pts, _ := l.Points(ctx, testMachine); !slices.Equal(pointIDs(pts), pointIDs(before)) {
				t.Fatalf("after the crash: points %v, want %v", pointIDs(pts), pointIDs(before))
			}
			if ds, _ := l.Disks(ctx, testMachine); ds[0].AppliedSeq != uint64(victim-1) {
				t.Fatalf("after the crash: applied %d, want %d", ds[0].AppliedSeq, victim-1)
			}
			// Another segment under the same number is refused once records may
			// be in the replica.
			if stage != "imported" {
				other := writeSegment(t, t.TempDir(), testMachine, "sda", uint64(victim), p.segs[0])
				if err := l.Apply(ctx, testMachine, "sda", uint64(victim), other); err == nil || !strings.Contains(err.Error(), "differs") {
					t.Fatalf("other segment after a crash: %v", err)
				}
			}
			for seq := victim; seq < len(p.segs); seq++ {
				if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
					t.Fatal(err)
				}
			}
			if d := want.equal(readDiskState(t, l, "sda")); d != "" {
				t.Fatalf("after crash and retry: %s", d)
			}
			pts, _ := l.Points(ctx, testMachine)
			if !slices.Equal(pointIDs(pts), pointIDs(wantPts)) {
				t.Fatalf("points %v, want %v", pointIDs(pts), pointIDs(wantPts))
			}
			for _, pt := range pts {
				imgs, err := l.Materialize(ctx, testMachine, pt.ID, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				checkImages(t, imgs, []*diskPlan{p}, pt.ID)
			}
		})
	}
}

// TestMaterializeWhileApplying materializes the latest point over and over
// while segments of the same disk, and of another, are being applied.
func TestMaterializeWhileApplying(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	points := pointNames(30)
	segDir := t.TempDir()
	plans := []*diskPlan{
		planDisk(rng, "sda", 512<<10, points, nil, -1, 0),
		planDisk(rng, "sdb", 384<<10, points, nil, 10, 512<<10),
	}
	for _, p := range plans {
		writePlan(t, segDir, p)
	}
	l := openTest(t, t.TempDir())
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	done := make(chan struct{})
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
	var checked int
	var readers sync.WaitGroup
	readers.Go(func() {
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
			pt, ok := LatestPoint(pts, "")
			if !ok {
				continue
			}
			imgs, err := l.Materialize(ctx, testMachine, pt.ID, t.TempDir())
			if err != nil {
				errs <- err
				return
			}
			if err := compareImages(imgs, plans, pt.ID); err != nil {
				errs <- err
				return
			}
			if _, err := l.Hashes(ctx, testMachine, "sda", 0, 512<<10, 64<<10); err != nil {
				errs <- err
				return
			}
			checked++
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d materializations during replication", checked)
	pts, _ := l.Points(ctx, testMachine)
	if len(pts) != len(points) {
		t.Fatalf("%d points, want %d", len(pts), len(points))
	}
}

// TestHashes checks Hashes against SHA-256 of known content, with a short
// last block and a range beyond the end of the replica.
func TestHashes(t *testing.T) {
	ctx := context.Background()
	const size = 10000
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7)
	}
	seg := writeSegment(t, t.TempDir(), testMachine, "sda", 0, segSpec{size: size, recs: []hrlfmt.Record{
		{Type: hrlfmt.RecData, Offset: 0, Length: size, Data: content, Gen: 1},
		{Type: hrlfmt.RecZero, Offset: 4096, Length: 100, Gen: 1, Reason: hrlfmt.ZeroZeroed},
	}})
	clear(content[4096:4196])
	l := openTest(t, t.TempDir())
	if err := l.Apply(ctx, testMachine, "sda", 0, seg); err != nil {
		t.Fatal(err)
	}
	extended := append(slices.Clone(content), make([]byte, 1<<20)...)
	for _, c := range []struct{ off, n, block int64 }{
		{0, size, 4096},
		{0, size, size},
		{100, 5000, 1000},
		{8192, 4096, 4096}, // runs past the end: zeros
		{20000, 8192, 4096},
		{0, 0, 4096},
		{9999, 1, 512},
	} {
		got, err := l.Hashes(ctx, testMachine, "sda", c.off, c.n, c.block)
		if err != nil {
			t.Fatal(err)
		}
		var want [][32]byte
		for s := c.off; s < c.off+c.n; s += c.block {
			e := min(s+c.block, c.off+c.n)
			want = append(want, sha256.Sum256(extended[s:e]))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("hashes %+v: %d hashes, differ from SHA-256 of the content", c, len(got))
		}
	}
	for _, c := range []struct{ off, n, block int64 }{{-1, 10, 10}, {0, -1, 10}, {0, 10, 0}, {0, 1 << 40, 1}, {1<<63 - 10, 100, 10}} {
		if _, err := l.Hashes(ctx, testMachine, "sda", c.off, c.n, c.block); err == nil {
			t.Fatalf("hashes %+v: no error", c)
		}
	}
	if _, err := l.Hashes(ctx, testMachine, "sdz", 0, 10, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hashes of an unknown disk: %v, want ErrNotFound", err)
	}
	if _, err := l.Hashes(ctx, "m9", "sda", 0, 10, 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hashes of an unknown machine: %v, want ErrNotFound", err)
	}
	// A disk SetDisks named but never applied reads as zeros.
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb", Size: 8192}}); err != nil {
		t.Fatal(err)
	}
	hs, err := l.Hashes(ctx, testMachine, "sdb", 0, 8192, 4096)
	if err != nil || len(hs) != 2 || hs[1] != sha256.Sum256(make([]byte, 4096)) {
		t.Fatalf("hashes of a new disk: %v, %v", hs, err)
	}
}

// TestBadNames checks that every entry point rejects names that are not
// [A-Za-z0-9._-]{1,63} or are "." or "..", and accepts the others.
func TestBadNames(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	seg := writeSegment(t, t.TempDir(), testMachine, "sda", 0, segSpec{size: 4096, recs: []hrlfmt.Record{
		{Type: hrlfmt.RecData, Offset: 0, Length: 1, Data: []byte{1}, Gen: 1},
	}})
	bad := []string{"", ".", "..", "a/b", "../x", "/abs", "a b", "é", "a\x00b", "a\\b", strings.Repeat("a", 64)}
	for _, name := range bad {
		for what, err := range map[string]error{
			"apply machine":       l.Apply(ctx, name, "sda", 0, seg),
			"apply disk":          l.Apply(ctx, testMachine, name, 0, seg),
			"set disks machine":   l.SetDisks(ctx, name, nil),
			"set disks disk":      l.SetDisks(ctx, testMachine, []DiskInfo{{Name: name}}),
			"points":              func() error { _, err := l.Points(ctx, name); return err }(),
			"disks":               func() error { _, err := l.Disks(ctx, name); return err }(),
			"materialize machine": func() error { _, err := l.Materialize(ctx, name, "p", t.TempDir()); return err }(),
			"hashes machine":      func() error { _, err := l.Hashes(ctx, name, "sda", 0, 1, 1); return err }(),
			"hashes disk":         func() error { _, err := l.Hashes(ctx, testMachine, name, 0, 1, 1); return err }(),
		} {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("%s %q: %v, want ErrInvalidName", what, name, err)
			}
		}
	}
	if ms, _ := l.Machines(ctx); len(ms) != 0 {
		t.Fatalf("bad names created machines %v", ms)
	}
	for _, name := range []string{"a", "...", "A.b_c-9", strings.Repeat("z", 63)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sda"}}); err == nil {
		t.Error("set disks with a disk twice: no error")
	}
	// A machine whose segment header names it, under a name the path
	// rules accept, works end to end.
	if err := l.Apply(ctx, testMachine, "sda", 0, seg); err != nil {
		t.Fatal(err)
	}
}

// TestOpenLocal checks that a store refuses a foreign directory and a
// second opener, and keeps its data across a reopen.
func TestOpenLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocal(dir); err == nil {
		t.Fatal("opened a store twice")
	}
	if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda", Size: 1}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTest(t, dir)
	if ms, err := l.Machines(ctx); err != nil || !slices.Equal(ms, []string{testMachine}) {
		t.Fatalf("machines after reopen: %v, %v", ms, err)
	}
	if _, err := l.Points(ctx, "m9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("points of an unknown machine: %v", err)
	}
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "x"), nil, 0o600)
	if _, err := OpenLocal(foreign); err == nil {
		t.Fatal("opened a directory that is not a store")
	}
	if _, err := os.Stat(filepath.Join(foreign, lockFile)); err == nil {
		t.Fatal("touched a directory that is not a store")
	}
}

// TestMaterializeNeverOverwrites checks that an existing image is left
// alone and the point not materialized.
func TestMaterializeNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 4)
	l := openTest(t, t.TempDir())
	for seq, path := range p.paths {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), path); err != nil {
			t.Fatal(err)
		}
	}
	pts, _ := l.Points(ctx, testMachine)
	out := t.TempDir()
	keep := filepath.Join(out, "sda.img")
	os.WriteFile(keep, []byte("precious"), 0o600)
	if _, err := l.Materialize(ctx, testMachine, pts[0].ID, out); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("materialize over an image: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "precious" {
		t.Fatal("existing image overwritten")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Fatalf("left %v", ents)
	}
}

func TestLatestPoint(t *testing.T) {
	pts := []Point{{ID: "a", Kind: "app"}, {ID: "b", Kind: "crash"}, {ID: "c", Kind: "crash"}, {ID: "d", Kind: "group"}}
	for _, c := range []struct {
		kind, want string
		ok         bool
	}{{"", "d", true}, {"crash", "c", true}, {"app", "a", true}, {"group", "d", true}, {"other", "", false}} {
		p, ok := LatestPoint(pts, c.kind)
		if ok != c.ok || p.ID != c.want {
			t.Errorf("LatestPoint(%q) = %q, %v; want %q, %v", c.kind, p.ID, ok, c.want, c.ok)
		}
	}
	if _, ok := LatestPoint(nil, ""); ok {
		t.Error("LatestPoint of no points")
	}
}
