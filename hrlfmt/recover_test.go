package hrlfmt

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// crashSegment writes segment seq in dir with random records and "crashes":
// the file is closed without a trailer. It returns the file's bytes, the
// records, and the end offset of the header and of each record.
func crashSegment(t *testing.T, dir string, seq uint64, rng *rand.Rand) ([]byte, []Record, []int) {
	t.Helper()
	w, err := CreateSegment(filepath.Join(dir, SegmentName(seq)), testHeader(seq))
	if err != nil {
		t.Fatal(err)
	}
	ends := []int{int(w.Size())}
	var recs []Record
	for i := range 1 + rng.IntN(12) {
		gen := uint64(i / 2)
		var r Record
		switch rng.IntN(4) {
		case 0:
			r = dataRec(rng.Int64N(1<<29), gen, randomBytes(rng.Uint64(), 1+rng.IntN(6000)))
		case 1:
			r = dataRec(rng.Int64N(1<<29), gen, textBytes(rng.Uint64(), 1+rng.IntN(20000)))
		case 2:
			r = zeroRec(rng.Int64N(1<<29), 1+rng.Int64N(1<<20), gen, ZeroReason(1+rng.IntN(2)))
		case 3:
			r = cutRec(CutKind(1+rng.IntN(3)), gen, goldenTime.Add(time.Duration(i)*time.Second), fmt.Sprint("point-", i))
		}
		if err := writeRecords(w, []Record{r}); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		ends = append(ends, int(w.Size()))
	}
	w.f.Close() // the process dies: no trailer
	return mustRead(t, w.Path()), recs, ends
}

// TestRecoverCrash simulates crashes at random points of an append, in
// three ways (the file cut short; cut short and then zeros, as a file
// system may leave; full length but zeros from the cut on), and checks that
// Recover keeps every whole record before the cut, seals the segment,
// keeps the dropped bytes in a .torn copy and returns the right next
// sequence number; and that the directory can then be written again.
func TestRecoverCrash(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			dir := t.TempDir()
			prev := mustRead(t, writeSegment(t, dir, testHeader(4), []Record{zeroRec(0, 1, 1, ZeroZeroed)}))
			orig, recs, ends := crashSegment(t, dir, 5, rng)
			path := filepath.Join(dir, SegmentName(5))

			// Where the crash cuts: anywhere, exactly between records, or
			// in the header record.
			cut := rng.IntN(len(orig) + 1)
			switch rng.IntN(8) {
			case 0, 1:
				cut = ends[rng.IntN(len(ends))]
			case 2:
				cut = rng.IntN(ends[0] + 1)
			}
			got := bytes.Clone(orig[:cut])
			switch mode := rng.IntN(3); mode {
			case 1:
				got = append(got, make([]byte, 1+rng.IntN(8192))...)
			case 2:
				got = append(got, make([]byte, len(orig)-cut)...)
			}
			if err := os.WriteFile(path, got, 0o600); err != nil {
				t.Fatal(err)
			}
			// The records that survive are those whose bytes are intact.
			intact := func(start, end int) bool { return end <= len(got) && bytes.Equal(got[start:end], orig[start:end]) }
			valid, good := 0, 0
			if intact(0, ends[0]) {
				valid = ends[0]
				for good < len(recs) && intact(ends[good], ends[good+1]) {
					good++
					valid = ends[good]
				}
			}

			rec, err := Recover(dir)
			if err != nil {
				t.Fatalf("cut at %d of %d: %v", cut, len(orig), err)
			}
			if !rec.Found || rec.Repaired != path || rec.Truncated != int64(len(got)-valid) {
				t.Errorf("cut at %d of %d: %+v; want %d bytes truncated", cut, len(orig), rec, len(got)-valid)
			}
			if rec.Truncated > 0 {
				if rec.TornCopy != path+".torn" || !bytes.Equal(mustRead(t, rec.TornCopy), got) {
					t.Errorf("torn copy %q does not hold the original bytes", rec.TornCopy)
				}
			} else if rec.TornCopy != "" {
				t.Errorf("torn copy %q made with nothing dropped", rec.TornCopy)
			}
			if valid == 0 {
				if !rec.Removed || rec.NextSeq != 5 {
					t.Errorf("no good header: %+v, want segment 5 removed and reused", rec)
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("segment without a header still there: %v", err)
				}
			} else {
				if rec.Removed || rec.NextSeq != 6 {
					t.Errorf("%+v, want next sequence 6", rec)
				}
				s, err := VerifySegment(path)
				if err != nil || !s.Complete || s.Records != good || s.ValidBytes != int64(valid+trailerRecordSize) {
					t.Fatalf("recovered segment: %+v, %v; want %d records, %d bytes", s, err, good, valid+trailerRecordSize)
				}
				_, back, err := readAll(mustRead(t, path))
				if err != nil {
					t.Fatal(err)
				}
				for i := range back {
					if !sameRecord(back[i], recs[i]) {
						t.Errorf("recovered record %d differs", i)
					}
				}
			}
			if !bytes.Equal(mustRead(t, filepath.Join(dir, SegmentName(4))), prev) {
				t.Error("an earlier segment changed")
			}

			// Recovering again changes nothing.
			again, err := Recover(dir)
			if err != nil || again.Repaired != "" || again.NextSeq != rec.NextSeq {
				t.Fatalf("second Recover: %+v, %v", again, err)
			}
			// And the journal goes on from there.
			o := testOptions(dir)
			o.FirstSeq = rec.NextSeq
			var rs *[]rotation
			o.OnRotate, rs = recordRotations()
			w, err := NewWriter(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteZero(0, 1, 9, ZeroZeroed); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			checkRotations(t, *rs, rec.NextSeq)
		})
	}
}

// TestRecoverComplete: a directory whose last segment is complete is left
// alone; an empty one gives Found false.
func TestRecoverComplete(t *testing.T) {
	dir := t.TempDir()
	if rec, err := Recover(dir); err != nil || rec.Found || rec.NextSeq != 0 {
		t.Fatalf("empty directory: %+v, %v", rec, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0000000000000009.hrl.torn"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rec, err := Recover(dir); err != nil || rec.Found {
		t.Fatalf("directory with a torn copy only: %+v, %v", rec, err)
	}
	writeSegment(t, dir, testHeader(2), nil)
	path := writeSegment(t, dir, testHeader(3), []Record{zeroRec(0, 1, 1, ZeroZeroed)})
	before := mustRead(t, path)
	rec, err := Recover(dir)
	if err != nil || rec != (Recovery{Found: true, NextSeq: 4}) {
		t.Fatalf("got %+v, %v", rec, err)
	}
	if !bytes.Equal(mustRead(t, path), before) {
		t.Error("a complete segment changed")
	}
}

// TestRecoverRefuses: a last segment that is corrupt, of another version
// or named for another sequence number is not touched.
func TestRecoverRefuses(t *testing.T) {
	g := mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl"))
	fs := frames(g)
	noTrailer := func(name string) []byte {
		b := mustRead(t, filepath.Join(fixtureDir, name))
		return b[:len(b)-trailerRecordSize]
	}
	tests := []struct {
		name string
		seg  []byte
		want error
	}{
		{"bit flip in a middle record", noTrailer("corrupt-payload-bitflip.hrl"), ErrCorrupt},
		{"unknown version", noTrailer("unknown-version.hrl"), ErrVersion},
		{"not a segment", []byte("this is not a segment, and it goes on and on"), ErrCorrupt},
		{"header of another sequence", g[:fs[3].start], ErrCorrupt}, // golden is segment 7
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SegmentName(8))
			if err := os.WriteFile(path, tt.seg, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Recover(dir); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !bytes.Equal(mustRead(t, path), tt.seg) {
				t.Error("segment changed")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("%d files in the directory, want 1", len(ents))
			}
		})
	}
}

// TestRecoverKeepsEveryCopy: a .torn copy from an earlier crash is never
// overwritten.
func TestRecoverKeepsEveryCopy(t *testing.T) {
	dir := t.TempDir()
	g := mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl"))
	path := filepath.Join(dir, SegmentName(7))
	for i, want := range []string{path + ".torn", path + ".torn.1", path + ".torn.2"} {
		torn := g[:len(g)-100-i]
		if err := os.WriteFile(path, torn, 0o600); err != nil {
			t.Fatal(err)
		}
		rec, err := Recover(dir)
		if err != nil || rec.TornCopy != want {
			t.Fatalf("crash %d: %+v, %v; want a copy in %s", i, rec, err, want)
		}
		if !bytes.Equal(mustRead(t, want), torn) {
			t.Errorf("%s does not hold the torn segment", want)
		}
		if err := os.Remove(path); err != nil { // as if the segment were shipped
			t.Fatal(err)
		}
	}
}
