package windows

import (
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf16"
)

// The fixtures below are laid out byte by byte as winioctl.h documents
// USN_RECORD_V2, USN_RECORD_V3 and USN_RECORD_V4 (offsets in the comments),
// independently of the parser.

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func align8(n int) int { return (n + 7) &^ 7 }

func v2Fixture(ref, parent uint64, usn int64, reason uint32, name string) []byte {
	u := utf16.Encode([]rune(name))
	n := align8(60 + 2*len(u))
	b := make([]byte, n)
	put32(b, 0, uint32(n)) // RecordLength
	put16(b, 4, 2)         // MajorVersion
	put16(b, 6, 0)         // MinorVersion
	put64(b, 8, ref)       // FileReferenceNumber
	put64(b, 16, parent)   // ParentFileReferenceNumber
	put64(b, 24, uint64(usn))
	put64(b, 32, 0x01d9000000000000) // TimeStamp
	put32(b, 40, reason)
	put32(b, 44, 0)    // SourceInfo
	put32(b, 48, 0x10) // SecurityId
	put32(b, 52, 0x20) // FileAttributes: ARCHIVE
	put16(b, 56, uint16(2*len(u)))
	put16(b, 58, 60) // FileNameOffset
	for i, c := range u {
		put16(b, 60+2*i, c)
	}
	return b
}

func v3Fixture(ref, parent uint64, usn int64, reason uint32, name string) []byte {
	u := utf16.Encode([]rune(name))
	n := align8(76 + 2*len(u))
	b := make([]byte, n)
	put32(b, 0, uint32(n))
	put16(b, 4, 3)
	put64(b, 8, ref) // FileReferenceNumber (FILE_ID_128, low half)
	put64(b, 16, 0)
	put64(b, 24, parent) // ParentFileReferenceNumber
	put64(b, 40, uint64(usn))
	put64(b, 48, 0x01d9000000000000) // TimeStamp
	put32(b, 56, reason)
	put32(b, 68, 0x20) // FileAttributes
	put16(b, 72, uint16(2*len(u)))
	put16(b, 74, 76)
	for i, c := range u {
		put16(b, 76+2*i, c)
	}
	return b
}

func v4Fixture(ref, parent uint64, usn int64, reason uint32, remaining uint32, ranges ...FileRange) []byte {
	n := align8(64 + 16*len(ranges))
	b := make([]byte, n)
	put32(b, 0, uint32(n))
	put16(b, 4, 4)
	put64(b, 8, ref)
	put64(b, 24, parent)
	put64(b, 40, uint64(usn))
	put32(b, 48, reason)
	put32(b, 52, 0) // SourceInfo
	put32(b, 56, remaining)
	put16(b, 60, uint16(len(ranges))) // NumberOfExtents
	put16(b, 62, 16)                  // ExtentSize
	for i, r := range ranges {
		put64(b, 64+16*i, uint64(r.Off))
		put64(b, 72+16*i, uint64(r.Len))
	}
	return b
}

func journalRead(next int64, recs ...[]byte) []byte {
	b := make([]byte, 8)
	put64(b, 0, uint64(next))
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

func TestParseRecordVersions(t *testing.T) {
	buf := journalRead(0x9000,
		v2Fixture(0x0005000000000040, 5, 0x1000, ReasonDataOverwrite|ReasonClose, "a.bin"),
		v3Fixture(0x0001000000000041, 0x0005000000000005, 0x1060, ReasonFileCreate, "ünïcode-名前.txt"),
		v4Fixture(0x0001000000000042, 5, 0x10c0, ReasonDataOverwrite, 1, FileRange{0, 65536}, FileRange{1 << 20, 4096}),
	)
	next, recs, err := ParseJournalRead(buf)
	if err != nil {
		t.Fatal(err)
	}
	if next != 0x9000 || len(recs) != 3 {
		t.Fatalf("next %#x, %d records", next, len(recs))
	}
	r := recs[0]
	if r.Major != 2 || r.File.Lo != 0x0005000000000040 || r.Parent.Lo != 5 || r.USN != 0x1000 ||
		r.Reason != ReasonDataOverwrite|ReasonClose || r.Name != "a.bin" || r.Attributes != 0x20 {
		t.Errorf("V2: %+v", r)
	}
	r = recs[1]
	if r.Major != 3 || r.File.Lo != 0x0001000000000041 || r.Parent.Lo != 0x0005000000000005 || r.USN != 0x1060 ||
		r.Reason != ReasonFileCreate || r.Name != "ünïcode-名前.txt" {
		t.Errorf("V3: %+v", r)
	}
	r = recs[2]
	if r.Major != 4 || r.File.Lo != 0x0001000000000042 || r.USN != 0x10c0 || r.RemainingExtents != 1 ||
		len(r.Ranges) != 2 || r.Ranges[0] != (FileRange{0, 65536}) || r.Ranges[1] != (FileRange{1 << 20, 4096}) {
		t.Errorf("V4: %+v", r)
	}
}

func TestParseRecordRejects(t *testing.T) {
	good := v2Fixture(64, 5, 1, ReasonClose, "x")
	cases := map[string]func([]byte) []byte{
		"short header":     func(b []byte) []byte { return b[:6] },
		"length too big":   func(b []byte) []byte { put32(b, 0, uint32(len(b)+8)); return b },
		"length unaligned": func(b []byte) []byte { put32(b, 0, 61); return b },
		"length too small": func(b []byte) []byte { put32(b, 0, 4); return b },
		"version 5":        func(b []byte) []byte { put16(b, 4, 5); return b },
		"name outside":     func(b []byte) []byte { put16(b, 56, 200); return b },
		"name odd length":  func(b []byte) []byte { put16(b, 56, 1); return b },
		"name in header":   func(b []byte) []byte { put16(b, 58, 10); return b },
		"v4 extents outside": func([]byte) []byte {
			b := v4Fixture(1, 5, 1, ReasonDataOverwrite, 0, FileRange{0, 1})
			put16(b, 60, 9)
			return b
		},
		"v4 negative extent": func([]byte) []byte {
			return v4Fixture(1, 5, 1, ReasonDataOverwrite, 0, FileRange{-4096, 1})
		},
		"v4 extent size small": func([]byte) []byte {
			b := v4Fixture(1, 5, 1, ReasonDataOverwrite, 0, FileRange{0, 1})
			put16(b, 62, 8)
			return b
		},
	}
	for name, mutate := range cases {
		b := mutate(append([]byte(nil), good...))
		if _, _, err := ParseRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err %v, want ErrBadRecord", name, err)
		}
	}
	if _, n, err := ParseRecord(good); err != nil || n != len(good) {
		t.Fatalf("good record: %d, %v", n, err)
	}
}

func TestParseJournalData(t *testing.T) {
	b := make([]byte, 80)           // USN_JOURNAL_DATA_V2
	put64(b, 0, 0x01d9aabbccddeeff) // UsnJournalID
	put64(b, 8, 0x100)              // FirstUsn
	put64(b, 16, 0x9000)            // NextUsn
	put64(b, 24, 0x80)              // LowestValidUsn
	put64(b, 32, 0x7fff0000)        // MaxUsn
	put64(b, 40, 32<<20)            // MaximumSize
	put64(b, 48, 8<<20)             // AllocationDelta
	put16(b, 56, 2)                 // MinSupportedMajorVersion
	put16(b, 58, 4)                 // MaxSupportedMajorVersion
	put32(b, 60, 1)                 // Flags: FLAG_USN_TRACK_MODIFIED_RANGES_ENABLE
	put64(b, 64, 16<<10)            // RangeTrackChunkSize
	put64(b, 72, 1<<20)             // RangeTrackFileSizeThreshold
	j, err := ParseJournalData(b)
	if err != nil {
		t.Fatal(err)
	}
	want := JournalInfo{ID: 0x01d9aabbccddeeff, FirstUSN: 0x100, NextUSN: 0x9000, LowestValidUSN: 0x80,
		MaxUSN: 0x7fff0000, MaxMajor: 4, RangeTracking: true, RangeChunk: 16 << 10, RangeThreshold: 1 << 20}
	if j != want {
		t.Fatalf("got %+v\nwant %+v", j, want)
	}
	j, err = ParseJournalData(b[:56]) // V0
	if err != nil || j.MaxMajor != 2 || j.RangeTracking {
		t.Fatalf("V0: %+v %v", j, err)
	}
	if _, err := ParseJournalData(b[:40]); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("short: %v", err)
	}
}

func TestCheckJournal(t *testing.T) {
	st := &VolumeState{JournalID: 7, NextUSN: 0x2000}
	cases := []struct {
		st   *VolumeState
		info JournalInfo
		want string
	}{
		{st, JournalInfo{ID: 7, FirstUSN: 0x1000, NextUSN: 0x3000}, ""},
		{st, JournalInfo{ID: 8, FirstUSN: 0, NextUSN: 0x3000}, ReasonJournalChanged},
		{st, JournalInfo{ID: 7, FirstUSN: 0x2800, NextUSN: 0x3000}, ReasonEntriesDeleted},
		{st, JournalInfo{ID: 7, FirstUSN: 0, LowestValidUSN: 0x2001, NextUSN: 0x3000}, ReasonEntriesDeleted},
		{nil, JournalInfo{ID: 7}, ReasonNoState},
	}
	for i, c := range cases {
		if got := CheckJournal(c.st, c.info); got != c.want {
			t.Errorf("%d: %q, want %q", i, got, c.want)
		}
	}
}

func FuzzParseJournalRead(f *testing.F) {
	f.Add(journalRead(1, v2Fixture(64, 5, 1, ReasonClose, "x")))
	f.Add(journalRead(2, v3Fixture(64, 5, 1, ReasonClose, "yy")))
	f.Add(journalRead(3, v4Fixture(64, 5, 1, ReasonDataOverwrite, 0, FileRange{0, 4096})))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, recs, err := ParseJournalRead(b)
		for _, r := range recs {
			for _, x := range r.Ranges {
				if x.Off < 0 || x.Len < 0 {
					t.Fatalf("negative range %+v", x)
				}
			}
		}
		_ = err
	})
}

func TestOpenFiles(t *testing.T) {
	a, b, c, d := FileRef{Lo: 40}, FileRef{Lo: 41}, FileRef{Lo: 42}, FileRef{Lo: 43}
	recs := []Record{
		{Major: 3, File: a, Reason: ReasonDataOverwrite},            // open, written
		{Major: 3, File: b, Reason: ReasonDataExtend},               // written ...
		{Major: 3, File: b, Reason: ReasonDataExtend | ReasonClose}, // ... and closed
		{Major: 3, File: c, Reason: ReasonRenameNewName},            // renamed only
		{Major: 4, File: d, Reason: ReasonDataOverwrite, Ranges: []FileRange{{0, 1}}},
		{Major: 3, File: a, Reason: ReasonDataOverwrite | ReasonStreamChange}, // still open
	}
	got := OpenFiles(recs)
	if len(got) != 2 || !got[a] || !got[d] {
		t.Fatalf("open files %v, want %v and %v", got, a, d)
	}
}
