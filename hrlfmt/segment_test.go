package hrlfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
)

func testHeader(seq uint64) Header {
	return Header{Machine: "db1", Disk: "sda", DiskSize: 1 << 30, Seq: seq, Created: goldenTime}
}

// TestRoundTrip writes every kind of record, at the edges of what the
// format allows, and reads them back unchanged.
func TestRoundTrip(t *testing.T) {
	const size = 1 << 30
	h := testHeader(3)
	id64 := strings.Repeat("p", MaxPointIDLength)
	tests := []struct {
		name string
		rec  Record
		comp Compression // for DATA
	}{
		{"data compressible", dataRec(0, 1, textBytes(2, 64<<10)), CompressLZ4},
		{"data incompressible", dataRec(1<<20, 1, randomBytes(3, 64<<10)), CompressNone},
		{"data all zero", dataRec(4096, 1, make([]byte, 1<<20)), CompressLZ4},
		{"data one byte", dataRec(size-1, 2, []byte{7}), CompressNone},
		{"data 13 bytes", dataRec(512, 2, bytes.Repeat([]byte{1}, 13)), CompressNone},
		{"data max compressible", dataRec(0, 3, textBytes(4, MaxDataLength)), CompressLZ4},
		{"data max incompressible", dataRec(size-MaxDataLength, 3, randomBytes(5, MaxDataLength)), CompressNone},
		{"data generation max", dataRec(8192, math.MaxUint64, randomBytes(6, 100)), CompressNone},
		{"zero zeroed", zeroRec(0, 4096, 4, ZeroZeroed), 0},
		{"zero discarded whole disk", zeroRec(0, size, 4, ZeroDiscarded), 0},
		{"zero last byte", zeroRec(size-1, 1, 4, ZeroZeroed), 0},
		{"cut crash uuid", cutRec(CutCrash, 5, goldenTime, "0b3c1d9e-8f7a-4b6c-9d2e-1f0a3b4c5d6e"), 0},
		{"cut app longest id", cutRec(CutApp, 6, goldenTime.Add(time.Hour), id64), 0},
		{"cut group one-byte id utf8", cutRec(CutGroup, 7, time.Unix(0, 1), "é"), 0},
		{"cut before 1970", cutRec(CutCrash, 8, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), "old"), 0},
	}
	recs := make([]Record, len(tests))
	for i, tt := range tests {
		recs[i] = tt.rec
	}
	seg := mustRead(t, writeSegment(t, t.TempDir(), h, recs))
	gh, got, err := readAll(seg)
	if err != nil {
		t.Fatal(err)
	}
	if gh.Seq != 3 || gh.Machine != "db1" || gh.Disk != "sda" || gh.DiskSize != size || !gh.Created.Equal(goldenTime) || gh.Version != Version {
		t.Errorf("header %+v", gh)
	}
	if len(got) != len(tests) {
		t.Fatalf("read %d records, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		if !sameRecord(got[i], tt.rec) {
			t.Errorf("%s: read back a different record", tt.name)
		}
		if tt.rec.Type == RecData && got[i].Compression != tt.comp {
			t.Errorf("%s: stored as %v, want %v", tt.name, got[i].Compression, tt.comp)
		}
		if i > 0 && got[i].Pos <= got[i-1].Pos {
			t.Errorf("%s: position %d not after %d", tt.name, got[i].Pos, got[i-1].Pos)
		}
	}
}

// TestEmptySegment: a segment with no record is valid.
func TestEmptySegment(t *testing.T) {
	seg := mustRead(t, writeSegment(t, t.TempDir(), testHeader(0), nil))
	if _, recs, err := readAll(seg); err != nil || len(recs) != 0 {
		t.Fatalf("got %d records, %v", len(recs), err)
	}
}

// TestWriteRejects: arguments the format cannot hold are refused, and
// leave the segment as it was.
func TestWriteRejects(t *testing.T) {
	const size = 1 << 20
	okCut := Cut{Kind: CutCrash, Gen: 1, Time: goldenTime, PointID: "p"}
	withCut := func(f func(*Cut)) Cut { c := okCut; f(&c); return c }
	tests := []struct {
		name  string
		write func(*SegmentWriter) error
		want  string
	}{
		{"data nil", func(w *SegmentWriter) error { return w.WriteData(0, 1, nil) }, "empty extent"},
		{"data empty", func(w *SegmentWriter) error { return w.WriteData(0, 1, []byte{}) }, "empty extent"},
		{"data too long", func(w *SegmentWriter) error { return w.WriteData(0, 1, make([]byte, MaxDataLength+1)) }, "more than"},
		{"data negative offset", func(w *SegmentWriter) error { return w.WriteData(-1, 1, []byte{1}) }, "negative offset"},
		{"data past the disk", func(w *SegmentWriter) error { return w.WriteData(size-1, 1, []byte{1, 2}) }, "beyond disk size"},
		{"data offset overflow", func(w *SegmentWriter) error { return w.WriteData(math.MaxInt64, 1, []byte{1}) }, "beyond disk size"},
		{"zero empty", func(w *SegmentWriter) error { return w.WriteZero(0, 0, 1, ZeroZeroed) }, "not positive"},
		{"zero negative length", func(w *SegmentWriter) error { return w.WriteZero(10, -5, 1, ZeroZeroed) }, "not positive"},
		{"zero past the disk", func(w *SegmentWriter) error { return w.WriteZero(1, size, 1, ZeroZeroed) }, "beyond disk size"},
		{"zero overflow", func(w *SegmentWriter) error { return w.WriteZero(2, math.MaxInt64, 1, ZeroZeroed) }, "beyond disk size"},
		{"zero unknown reason", func(w *SegmentWriter) error { return w.WriteZero(0, 1, 1, 0) }, "unknown reason 0"},
		{"cut unknown kind", func(w *SegmentWriter) error { return w.WriteCut(withCut(func(c *Cut) { c.Kind = 9 })) }, "unknown kind 9"},
		{"cut empty id", func(w *SegmentWriter) error { return w.WriteCut(withCut(func(c *Cut) { c.PointID = "" })) }, "empty point id"},
		{"cut id too long", func(w *SegmentWriter) error {
			return w.WriteCut(withCut(func(c *Cut) { c.PointID = strings.Repeat("x", MaxPointIDLength+1) }))
		}, "more than 64"},
		{"cut id control", func(w *SegmentWriter) error { return w.WriteCut(withCut(func(c *Cut) { c.PointID = "a\nb" })) }, "control character"},
		{"cut id not utf8", func(w *SegmentWriter) error { return w.WriteCut(withCut(func(c *Cut) { c.PointID = "\xff" })) }, "UTF-8"},
		{"cut no time", func(w *SegmentWriter) error { return w.WriteCut(withCut(func(c *Cut) { c.Time = time.Time{} })) }, "not set"},
		{"cut time out of range", func(w *SegmentWriter) error {
			return w.WriteCut(withCut(func(c *Cut) { c.Time = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }))
		}, "out of range"},
	}
	h := testHeader(1)
	h.DiskSize = size
	w, err := CreateSegment(filepath.Join(t.TempDir(), "s.hrl"), h)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := w.Size()
			err := tt.write(w)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
			if w.Size() != before || w.Records() != 0 {
				t.Errorf("a refused write changed the segment")
			}
		})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := VerifySegment(w.Path()); err != nil || s.Records != 0 {
		t.Fatalf("after refused writes: %+v, %v", s, err)
	}
}

// TestHeaderValidate lists what a header may not be.
func TestHeaderValidate(t *testing.T) {
	ok := testHeader(1)
	ok.Version = Version
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid header: %v", err)
	}
	tests := []struct {
		name    string
		change  func(*Header)
		version bool // the error is ErrVersion
	}{
		{"version 0", func(h *Header) { h.Version = 0 }, true},
		{"version 2", func(h *Header) { h.Version = 2 }, true},
		{"no machine", func(h *Header) { h.Machine = "" }, false},
		{"long machine", func(h *Header) { h.Machine = strings.Repeat("m", MaxNameLength+1) }, false},
		{"machine with NUL", func(h *Header) { h.Machine = "a\x00b" }, false},
		{"no disk", func(h *Header) { h.Disk = "" }, false},
		{"disk not utf8", func(h *Header) { h.Disk = "\xc3" }, false},
		{"disk size 0", func(h *Header) { h.DiskSize = 0 }, false},
		{"disk size negative", func(h *Header) { h.DiskSize = -1 }, false},
		{"no creation time", func(h *Header) { h.Created = time.Time{} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ok
			tt.change(&h)
			err := h.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrVersion) != tt.version {
				t.Errorf("%v: ErrVersion %v, want %v", err, !tt.version, tt.version)
			}
		})
	}
	long := ok
	long.Machine = strings.Repeat("m", MaxNameLength)
	if err := long.Validate(); err != nil {
		t.Errorf("name of %d bytes: %v", MaxNameLength, err)
	}
}

// TestCreateSegmentExclusive: an existing file is never overwritten, and
// a refused header creates no file.
func TestCreateSegmentExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.hrl")
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateSegment(path, testHeader(1)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want fs.ErrExist", err)
	}
	if string(mustRead(t, path)) != "keep" {
		t.Fatal("existing file changed")
	}
	bad := testHeader(1)
	bad.Machine = ""
	other := filepath.Join(dir, "y.hrl")
	if _, err := CreateSegment(other, bad); err == nil {
		t.Fatal("bad header accepted")
	}
	if _, err := os.Stat(other); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused header left a file: %v", err)
	}
}

// TestSegmentWriterClosed: use after Close fails with ErrClosed.
func TestSegmentWriterClosed(t *testing.T) {
	w, err := CreateSegment(filepath.Join(t.TempDir(), "s.hrl"), testHeader(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	size := w.Size()
	for name, err := range map[string]error{
		"close": w.Close(),
		"data":  w.WriteData(0, 1, []byte{1}),
		"zero":  w.WriteZero(0, 1, 1, ZeroZeroed),
		"sync":  w.Sync(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if w.Size() != size || size != int64(len(mustRead(t, w.Path()))) {
		t.Errorf("Size %d, file %d", w.Size(), len(mustRead(t, w.Path())))
	}
}

// faultyFile is an *os.File whose writes, truncates and syncs can fail.
type faultyFile struct {
	*os.File
	failWrite    bool // write half the bytes, then fail
	failTruncate bool
	failSync     bool
}

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	if f.failWrite {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, syscall.ENOSPC
	}
	return f.File.WriteAt(b, off)
}

func (f *faultyFile) Truncate(n int64) error {
	if f.failTruncate {
		return syscall.EIO
	}
	return f.File.Truncate(n)
}

func (f *faultyFile) Sync() error {
	if f.failSync {
		return syscall.EIO
	}
	return f.File.Sync()
}

func faultySegment(t *testing.T) (*SegmentWriter, *faultyFile) {
	t.Helper()
	w, err := CreateSegment(filepath.Join(t.TempDir(), SegmentName(1)), testHeader(1))
	if err != nil {
		t.Fatal(err)
	}
	ff := &faultyFile{File: w.f.(*os.File)}
	w.f = ff
	return w, ff
}

// TestWriteFailureRolledBack: a write that fails half way (a full disk) is
// taken back; the writer goes on and the segment holds only whole records.
func TestWriteFailureRolledBack(t *testing.T) {
	w, ff := faultySegment(t)
	first := randomBytes(1, 4096)
	if err := w.WriteData(0, 1, first); err != nil {
		t.Fatal(err)
	}
	size := w.Size()
	ff.failWrite = true
	if err := w.WriteData(4096, 1, randomBytes(2, 4096)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", err)
	}
	if fi, _ := os.Stat(w.Path()); fi.Size() != size || w.Size() != size {
		t.Fatalf("file is %d bytes, writer says %d, want %d", fi.Size(), w.Size(), size)
	}
	ff.failWrite = false
	third := randomBytes(3, 4096)
	if err := w.WriteData(8192, 2, third); err != nil {
		t.Fatalf("write after a rolled-back failure: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, recs, err := readAll(mustRead(t, w.Path()))
	if err != nil || len(recs) != 2 || !bytes.Equal(recs[0].Data, first) || !bytes.Equal(recs[1].Data, third) {
		t.Fatalf("read back %d records, %v", len(recs), err)
	}
}

// TestWriteFailureNotRolledBack: when the roll-back fails too, the writer
// refuses everything after, and the file is still valid up to its last
// whole record.
func TestWriteFailureNotRolledBack(t *testing.T) {
	w, ff := faultySegment(t)
	if err := w.WriteZero(0, 4096, 1, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	good := w.Size()
	ff.failWrite, ff.failTruncate = true, true
	err := w.WriteData(4096, 1, randomBytes(2, 4096))
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("got %v, want ENOSPC and EIO", err)
	}
	ff.failWrite, ff.failTruncate = false, false
	if err2 := w.WriteZero(0, 1, 1, ZeroZeroed); err2 != err {
		t.Errorf("write after a failed roll-back: %v, want %v", err2, err)
	}
	if err2 := w.Close(); err2 != err {
		t.Errorf("Close: %v, want %v", err2, err)
	}
	s, verr := VerifySegment(w.Path())
	if !errors.Is(verr, ErrTorn) || s.ValidBytes != good || s.Records != 1 {
		t.Fatalf("segment: %+v, %v; want torn after %d bytes", s, verr, good)
	}
}

// TestSyncFailureSticky: after a failed fsync nothing more is written (the
// state of the file is unknown), and Close reports the failure.
func TestSyncFailureSticky(t *testing.T) {
	w, ff := faultySegment(t)
	if err := w.WriteZero(0, 1, 1, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	ff.failSync = true
	if err := w.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v", err)
	}
	ff.failSync = false
	if err := w.WriteZero(1, 1, 1, ZeroZeroed); !errors.Is(err, syscall.EIO) {
		t.Errorf("write after a failed sync: %v", err)
	}
	if err := w.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Close after a failed sync: %v", err)
	}
}

// TestReaderHeaderOnlyErrors: NewReader fails cleanly on inputs too short
// or wrong to hold a header.
func TestReaderHeaderOnlyErrors(t *testing.T) {
	g := mustRead(t, filepath.Join(fixtureDir, "golden-v1.hrl"))
	hdrEnd := frames(g)[0].end
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTorn},
		{"half a record header", g[:10], ErrTorn},
		{"half a header payload", g[:hdrEnd-5], ErrTorn},
		{"zeros", make([]byte, 4096), ErrTorn},
		{"text", []byte(strings.Repeat("not a segment\n", 10)), ErrCorrupt},
		{"a data record first", g[frames(g)[1].start:], ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.in))
			var fe *FormatError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) || fe.Offset != 0 {
				t.Fatalf("got %v, want %v at offset 0", err, tt.want)
			}
		})
	}
}

// TestReaderEOFSticky: after io.EOF, Next keeps returning io.EOF.
func TestReaderEOFSticky(t *testing.T) {
	r, err := OpenSegment(filepath.Join(fixtureDir, "golden-v1.hrl"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Next(); err != io.EOF || !r.Complete() {
		t.Fatalf("after the end: %v, complete %v", err, r.Complete())
	}
}

// rawRecord returns a record with good checksums around any payload.
func rawRecord(typ RecordType, flags uint8, payload []byte) []byte {
	r := append(make([]byte, RecordHeaderSize), payload...)
	sealRecord(r, typ, flags)
	return r
}

// TestRecordRules: records whose checksums are good but whose fields break
// a rule of the format are corrupt, reported at their own offset, whatever
// follows them.
func TestRecordRules(t *testing.T) {
	h := testHeader(1)
	h.Version = Version
	h.DiskSize = 1 << 20
	head, _ := appendHeaderRecord(nil, h)
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	text := textBytes(1, 4096)
	block := make([]byte, lz4.CompressBlockBound(len(text)))
	n, err := new(lz4.Compressor).CompressBlock(text, block)
	if err != nil || n == 0 {
		t.Fatal(err)
	}
	block = block[:n]
	data := func(off uint64, length uint32, comp byte, reserved byte, stored []byte) []byte {
		return rawRecord(RecData, 0, cat(le64(off), le64(1), le32(length), []byte{comp, reserved, 0, 0}, stored))
	}
	zero := func(off, n uint64, reason, reserved byte) []byte {
		return rawRecord(RecZero, 0, cat(le64(off), le64(n), le64(1), []byte{reason, 0, reserved, 0}))
	}
	cut := func(kind, n, reserved byte, id string) []byte {
		return rawRecord(RecCut, 0, cat(le64(1), le64(1), []byte{kind, n, reserved, 0}, []byte(id)))
	}
	reservedHeader := zero(0, 1, 1, 0)
	reservedHeader[7] = 1 // and the checksums made good again
	hcrc := crc32.Checksum(reservedHeader[:12], castagnoli)
	binary.LittleEndian.PutUint32(reservedHeader[12:], hcrc)
	binary.LittleEndian.PutUint32(reservedHeader[16:], crc32.Update(hcrc, castagnoli, reservedHeader[RecordHeaderSize:]))
	tests := []struct {
		name string
		rec  []byte
	}{
		{"data length 0", data(0, 0, 0, 0, []byte{1})},
		{"data too long", data(0, MaxDataLength+1, 0, 0, []byte{1})},
		{"data offset past int64", data(1<<63, 1, 0, 0, []byte{1})},
		{"data past the disk", data(1<<20-1, 2, 0, 0, []byte{1, 2})},
		{"data reserved byte", data(0, 1, 0, 1, []byte{1})},
		{"data unknown compression", data(0, 1, 2, 0, []byte{1})},
		{"data raw count differs", data(0, 2, 0, 0, []byte{1})},
		{"data lz4 gives more", data(0, uint32(len(text)-1), 1, 0, block)},
		{"data lz4 gives less", data(0, uint32(len(text)+1), 1, 0, block)},
		{"data lz4 garbage", data(0, 4096, 1, 0, []byte{0xff, 0xff, 0xff, 0xff})},
		{"data no stored bytes", rawRecord(RecData, 0, cat(le64(0), le64(1), le32(1), []byte{0, 0, 0, 0}))},
		{"zero reason 0", zero(0, 1, 0, 0)},
		{"zero reason 3", zero(0, 1, 3, 0)},
		{"zero reserved byte", zero(0, 1, 1, 1)},
		{"zero length 0", zero(0, 0, 1, 0)},
		{"zero past the disk", zero(1, 1<<20, 1, 0)},
		{"zero offset past int64", zero(1<<63, 1, 1, 0)},
		{"zero short payload", rawRecord(RecZero, 0, make([]byte, zeroPayloadSize-1))},
		{"cut kind 0", cut(0, 1, 0, "p")},
		{"cut kind 4", cut(4, 1, 0, "p")},
		{"cut empty id", cut(1, 0, 0, "")},
		{"cut id longer than stated", cut(1, 1, 0, "pp")},
		{"cut id shorter than stated", cut(1, 3, 0, "pp")},
		{"cut id too long", cut(1, 65, 0, strings.Repeat("p", 65))},
		{"cut id control character", cut(1, 2, 0, "p\x00")},
		{"cut reserved byte", cut(1, 1, 1, "p")},
		{"trailer short", rawRecord(RecTrailer, 0, make([]byte, trailerSize-1))},
		{"trailer wrong", rawRecord(RecTrailer, 0, make([]byte, trailerSize))},
		{"second header", head},
		{"reserved record header bytes", reservedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := zero(0, 1, 1, 0)
			for _, tail := range [][]byte{nil, good} { // last, or followed by more
				seg := cat(head, good, tt.rec, tail)
				_, recs, err := readAll(seg)
				var fe *FormatError
				if !errors.Is(err, ErrCorrupt) || !errors.As(err, &fe) || fe.Offset != int64(len(head)+len(good)) {
					t.Fatalf("got %v, want ErrCorrupt at %d", err, len(head)+len(good))
				}
				if len(recs) != 1 {
					t.Fatalf("%d records before the bad one, want 1", len(recs))
				}
			}
		})
	}
}

func TestNoteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SegmentName(1))
	w, err := CreateSegment(path, Header{Version: Version, Machine: "m", Disk: "d", DiskSize: 1 << 20, Seq: 1, Created: time.Unix(5, 0)})
	if err != nil {
		t.Fatal(err)
	}
	note := Note{PointID: "p-1", Freeze: 1234567 * time.Nanosecond, Text: `{"pre":[{"script":"10-pg","exit":0}]}`}
	if err := w.WriteNote(note); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCut(Cut{Kind: CutApp, Gen: 3, Time: time.Unix(6, 0), PointID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Note{{PointID: ""}, {PointID: "x", Freeze: -1}, {PointID: "x", Text: strings.Repeat("a", MaxNoteLength+1)}, {PointID: "x", Text: "\xff"}} {
		if err := w.WriteNote(bad); err == nil {
			t.Errorf("WriteNote(%+v) accepted", bad)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := VerifySegment(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Notes) != 1 || s.Notes[0] != note || len(s.Cuts) != 1 || !s.Complete {
		t.Fatalf("summary = %+v; want the note and the cut back", s)
	}
}

func TestVersion10StillReads(t *testing.T) {
	s, err := VerifySegment(filepath.Join("..", "testdata", "hrl", "golden-v1.0.hrl"))
	if err != nil || !s.Complete || s.Header.Minor != 0 || s.Records == 0 {
		t.Fatalf("a version 1.0 segment: %+v, %v", s, err)
	}
}
