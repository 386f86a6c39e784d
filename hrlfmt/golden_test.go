package hrlfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden segment and the fixtures in testdata/hrl")

// fixtureDir holds the golden segment and the fixtures made from it.
const fixtureDir = "../testdata/hrl"

var goldenTime = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func goldenHeader() Header {
	return Header{Machine: "golden-host", Disk: "vdb", DiskSize: 64 << 20, Seq: 7, Created: goldenTime, FirstGen: 41}
}

// goldenRecords are the records of the golden segment, in order.
func goldenRecords() []Record {
	return []Record{
		0: dataRec(0, 41, textBytes(1, 8192)),        // lz4
		1: dataRec(1<<20, 41, randomBytes(1, 4096)),  // raw
		2: zeroRec(2<<20, 1<<20, 41, ZeroZeroed),     // same size as 3
		3: zeroRec(8<<20, 64<<10, 42, ZeroDiscarded), //
		4: cutRec(CutCrash, 42, goldenTime.Add(time.Second), "4f1c2b8e-2d1a-4c3e-9b7a-0e5d6c7b8a91"),
		5: dataRec(4096, 43, bytes.Repeat([]byte{0xab}, 512)), // lz4
		6: cutRec(CutApp, 43, goldenTime.Add(2*time.Second), "app-20250102T030407Z"),
		7: dataRec(64<<20-4096, 43, randomBytes(2, 4096)), // raw, at the end of the disk
		8: cutRec(CutGroup, 44, goldenTime.Add(3*time.Second), "group-7"),
	}
}

// goldenSegment writes the golden segment and returns its bytes.
func goldenSegment(t testing.TB) []byte {
	t.Helper()
	return mustRead(t, writeSegment(t, t.TempDir(), goldenHeader(), goldenRecords()))
}

// fixture is one case made from the golden segment, and what a reader must
// make of it.
type fixture struct {
	name string
	// make returns the fixture's bytes from the golden segment g, whose
	// records are fs (header first, trailer last).
	make func(g []byte, fs []frame) []byte
	// err is the sentinel the reader must end with; nil for a clean end.
	err error
	// at returns the offset the error must report.
	at func(g []byte, fs []frame) int64
	// good are the indices in goldenRecords of the records read before.
	good []int
	// skipped is the number of records skipped as unknown.
	skipped int
}

// rec returns the frame of golden record i; trailer returns the trailer's.
func rec(fs []frame, i int) frame   { return fs[i+1] }
func trailerFrame(fs []frame) frame { return fs[len(fs)-1] }

func atRecord(i int) func([]byte, []frame) int64 {
	return func(_ []byte, fs []frame) int64 { return int64(rec(fs, i).start) }
}
func atTrailer(_ []byte, fs []frame) int64 { return int64(trailerFrame(fs).start) }
func atZero([]byte, []frame) int64         { return 0 }
func atEnd(g []byte, _ []frame) int64      { return int64(len(g)) }

func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// reseal recomputes the checksums of the record in b[fr.start:fr.end] after
// its payload or fields were changed.
func reseal(b []byte, fr frame) {
	r := b[fr.start:fr.end]
	sealRecord(r, RecordType(r[4]), r[5])
}

// fixTrailer rewrites the last record of seg, a trailer, to match the
// records before it (count, offset and chain; data bytes and generation are
// kept).
func fixTrailer(seg []byte) {
	fs := frames(seg)
	tr := fs[len(fs)-1]
	p := seg[tr.start+RecordHeaderSize : tr.end]
	var chain uint32
	for _, f := range fs[:len(fs)-1] {
		chain = crc32.Update(chain, castagnoli, seg[f.start+16:f.start+20])
	}
	binary.LittleEndian.PutUint64(p[0:], uint64(len(fs)-2))
	binary.LittleEndian.PutUint64(p[24:], uint64(tr.start))
	binary.LittleEndian.PutUint32(p[32:], chain)
	reseal(seg, tr)
}

// unknownRecord returns a record of the unknown type 'X' with the given flags.
func unknownRecord(flags uint8) []byte {
	r := append(make([]byte, RecordHeaderSize), "a record from the future"...)
	sealRecord(r, 'X', flags)
	return r
}

// insertBefore returns g with extra inserted at the start of golden record i.
func insertBefore(g []byte, fs []frame, i int, extra []byte) []byte {
	at := rec(fs, i).start
	return append(append(append([]byte(nil), g[:at]...), extra...), g[at:]...)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

var fixtures = []fixture{{
	name: "golden-v1.hrl",
	make: func(g []byte, _ []frame) []byte { return g },
	good: upTo(9),
}, {
	name: "torn-empty.hrl",
	make: func([]byte, []frame) []byte { return nil },
	err:  ErrTorn, at: atZero,
}, {
	name: "torn-mid-record.hrl",
	make: func(g []byte, fs []frame) []byte { return g[:rec(fs, 1).start+RecordHeaderSize+1000] },
	err:  ErrTorn, at: atRecord(1), good: upTo(1),
}, {
	name: "torn-mid-record-header.hrl",
	make: func(g []byte, fs []frame) []byte { return g[:rec(fs, 5).start+7] },
	err:  ErrTorn, at: atRecord(5), good: upTo(5),
}, {
	name: "torn-at-boundary.hrl",
	make: func(g []byte, fs []frame) []byte { return g[:trailerFrame(fs).start] },
	err:  ErrTorn, at: atTrailer, good: upTo(9),
}, {
	// A file system may keep the new size of a file but not its last
	// blocks after a crash: they read as zeros.
	name: "torn-zero-tail.hrl",
	make: func(g []byte, fs []frame) []byte {
		return append(clone(g[:trailerFrame(fs).start]), make([]byte, 5000)...)
	},
	err: ErrTorn, at: atTrailer, good: upTo(9),
}, {
	// The last record's checksum fails and nothing follows it: an
	// interrupted append, not corruption.
	name: "torn-last-record-checksum.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g[:trailerFrame(fs).start])
		b[rec(fs, 8).end-1] ^= 0x01
		return b
	},
	err: ErrTorn, at: atRecord(8), good: upTo(8),
}, {
	// A good record header whose length runs past the end of the file:
	// the reader must not allocate the length, only what is there.
	name: "torn-long-length.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g[:rec(fs, 8).start])
		f := rec(fs, 7)
		binary.LittleEndian.PutUint32(b[f.start+8:], MaxPayload)
		binary.LittleEndian.PutUint32(b[f.start+12:], crc32.Checksum(b[f.start:f.start+12], castagnoli))
		return b
	},
	err: ErrTorn, at: atRecord(7), good: upTo(7),
}, {
	name: "corrupt-payload-bitflip.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		b[rec(fs, 1).start+RecordHeaderSize+dataFixedSize+100] ^= 0x10
		return b
	},
	err: ErrCorrupt, at: atRecord(1), good: upTo(1),
}, {
	// A damaged length field is caught by the header checksum before the
	// length is used.
	name: "corrupt-record-length.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		b[rec(fs, 2).start+9] ^= 0x40
		return b
	},
	err: ErrCorrupt, at: atRecord(2), good: upTo(2),
}, {
	name: "corrupt-header-magic.hrl",
	make: func(g []byte, _ []frame) []byte {
		b := clone(g)
		b[0] = 'X'
		return b
	},
	err: ErrCorrupt, at: atZero,
}, {
	// A length far beyond MaxPayload, with a good header checksum: refused
	// before anything is allocated.
	name: "corrupt-absurd-length.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		f := rec(fs, 1)
		binary.LittleEndian.PutUint32(b[f.start+8:], 0xfffffff0)
		binary.LittleEndian.PutUint32(b[f.start+12:], crc32.Checksum(b[f.start:f.start+12], castagnoli))
		return b
	},
	err: ErrCorrupt, at: atRecord(1), good: upTo(1),
}, {
	// An lz4 record whose stated length is one byte more than its block
	// gives, with good checksums.
	name: "corrupt-lz4-length.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		f := rec(fs, 0)
		p := b[f.start+RecordHeaderSize:]
		binary.LittleEndian.PutUint32(p[16:], binary.LittleEndian.Uint32(p[16:])+1)
		reseal(b, f)
		return b
	},
	err: ErrCorrupt, at: atRecord(0),
}, {
	// Two records of the same size swapped: every count in the trailer
	// still matches, only the chained checksum tells.
	name: "corrupt-trailer-chain.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		r2, r3 := rec(fs, 2), rec(fs, 3)
		copy(b[r2.start:r2.end], g[r3.start:r3.end])
		copy(b[r3.start:r3.end], g[r2.start:r2.end])
		return b
	},
	err: ErrCorrupt, at: atTrailer, good: []int{0, 1, 3, 2, 4, 5, 6, 7, 8},
}, {
	name: "corrupt-after-trailer.hrl",
	make: func(g []byte, _ []frame) []byte { return append(clone(g), "trailing junk"...) },
	err:  ErrCorrupt, at: atEnd, good: upTo(9),
}, {
	name: "corrupt-second-header.hrl",
	make: func(g []byte, fs []frame) []byte { return insertBefore(g, fs, 5, g[fs[0].start:fs[0].end]) },
	err:  ErrCorrupt, at: atRecord(5), good: upTo(5),
}, {
	name: "unknown-version.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := clone(g)
		binary.LittleEndian.PutUint16(b[RecordHeaderSize:], 2)
		reseal(b, fs[0])
		return b
	},
	err: ErrVersion, at: atZero,
}, {
	name: "unknown-record-skippable.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := insertBefore(g, fs, 5, unknownRecord(FlagSkippable))
		fixTrailer(b)
		return b
	},
	good: upTo(9), skipped: 1,
}, {
	name: "unknown-record-required.hrl",
	make: func(g []byte, fs []frame) []byte {
		b := insertBefore(g, fs, 5, unknownRecord(0))
		fixTrailer(b)
		return b
	},
	err: ErrVersion, at: atRecord(5), good: upTo(5),
}}

// TestGolden fails when the writer's output differs from the golden segment,
// or a fixture from what the golden segment gives. With -update it rewrites
// them instead.
func TestGolden(t *testing.T) {
	g := goldenSegment(t)
	if *update {
		if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
			t.Fatal(err)
		}
		fs := frames(g)
		for _, fx := range fixtures {
			if err := os.WriteFile(filepath.Join(fixtureDir, fx.name), fx.make(g, fs), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl"))
	if !bytes.Equal(g, want) {
		t.Fatalf("the writer's output (%d bytes) differs from golden-v1.hrl (%d bytes): if the format changed on purpose, run go test ./hrlfmt -update", len(g), len(want))
	}
	fs := frames(want)
	for _, fx := range fixtures {
		if got := mustRead(t, filepath.Join(fixtureDir, fx.name)); !bytes.Equal(got, fx.make(want, fs)) {
			t.Errorf("%s is out of date: run go test ./hrlfmt -update", fx.name)
		}
	}
}

// TestGoldenContent checks the golden segment against the records written
// into it, field by field, and the compression the writer chose.
func TestGoldenContent(t *testing.T) {
	h, recs, err := readAll(mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl")))
	if err != nil {
		t.Fatal(err)
	}
	wh := goldenHeader()
	wh.Version, wh.Minor = Version, MinorVersion
	if h != wh {
		t.Errorf("header = %+v, want %+v", h, wh)
	}
	want := goldenRecords()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if !sameRecord(recs[i], want[i]) {
			t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
		}
	}
	for i, c := range map[int]Compression{0: CompressLZ4, 1: CompressNone, 5: CompressLZ4, 7: CompressNone} {
		if recs[i].Compression != c {
			t.Errorf("record %d stored as %v, want %v", i, recs[i].Compression, c)
		}
	}
}

// TestFixtures reads every fixture and checks the error (with errors.Is),
// its offset and file, the records read before it, and that reading never
// allocates much more than the file holds.
func TestFixtures(t *testing.T) {
	golden := goldenRecords()
	g := mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl"))
	fs := frames(g)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := filepath.Join(fixtureDir, fx.name)
			size := int64(len(mustRead(t, path)))
			var recs []Record
			var err error
			r, err := OpenSegment(path)
			if err == nil {
				defer r.Close()
				for {
					var rec Record
					if rec, err = r.Next(); err != nil {
						break
					}
					recs = append(recs, rec)
				}
			}
			if fx.err == nil {
				if err != io.EOF {
					t.Fatalf("got %v, want a clean end", err)
				}
			} else {
				if !errors.Is(err, fx.err) {
					t.Fatalf("got %v, want %v", err, fx.err)
				}
				for _, other := range []error{ErrTorn, ErrCorrupt, ErrVersion} {
					if other != fx.err && errors.Is(err, other) {
						t.Errorf("%v is also %v", err, other)
					}
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("%v is not a *FormatError", err)
				}
				if want := fx.at(g, fs); fe.Offset != want {
					t.Errorf("error at offset %d, want %d: %v", fe.Offset, want, err)
				}
				if fe.File != path {
					t.Errorf("error names file %q, want %q", fe.File, path)
				}
				if r != nil {
					if _, again := r.Next(); again != err {
						t.Errorf("Next after an error returned %v, want the same error", again)
					}
				}
			}
			if len(recs) != len(fx.good) {
				t.Fatalf("read %d records, want %d", len(recs), len(fx.good))
			}
			for i, gi := range fx.good {
				if !sameRecord(recs[i], golden[gi]) {
					t.Errorf("record %d = %+v, want golden record %d", i, recs[i], gi)
				}
			}
			// The payload buffer grows as bytes arrive: a lying length costs
			// no more than the file. Allow the read buffer and the records.
			if allocated, limit := readAllocs(mustRead(t, path)), uint64(4*size+256<<10); allocated > limit {
				t.Errorf("reading a %d-byte file allocated %d bytes, more than %d", size, allocated, limit)
			}

			s, verr := VerifySegment(path)
			if !errors.Is(verr, fx.err) {
				t.Errorf("VerifySegment: %v, want %v", verr, fx.err)
			}
			if s.Complete != (fx.err == nil) || s.Records != len(fx.good) || s.Skipped != fx.skipped {
				t.Errorf("VerifySegment: complete %v, %d records, %d skipped; want %v, %d, %d",
					s.Complete, s.Records, s.Skipped, fx.err == nil, len(fx.good), fx.skipped)
			}
			if fx.err != nil {
				if want := fx.at(g, fs); s.ValidBytes != want {
					t.Errorf("VerifySegment: %d valid bytes, want %d", s.ValidBytes, want)
				}
			} else if s.ValidBytes != size {
				t.Errorf("VerifySegment: %d valid bytes of %d", s.ValidBytes, size)
			}
		})
	}
}

// TestVerifySummary checks the summary of the golden segment.
func TestVerifySummary(t *testing.T) {
	s, err := VerifySegment(filepath.Join(fixtureDir, "golden-v1.hrl"))
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	var cuts []Cut
	for _, r := range goldenRecords() {
		data += int64(len(r.Data))
		if r.Cut != nil {
			cuts = append(cuts, *r.Cut)
		}
	}
	if !s.Complete || s.Records != 9 || s.DataBytes != data || s.LastGen != 44 || len(s.Cuts) != len(cuts) {
		t.Fatalf("summary %+v", s)
	}
	for i := range cuts {
		if s.Cuts[i].PointID != cuts[i].PointID || !s.Cuts[i].Time.Equal(cuts[i].Time) {
			t.Errorf("cut %d = %+v, want %+v", i, s.Cuts[i], cuts[i])
		}
	}
}
