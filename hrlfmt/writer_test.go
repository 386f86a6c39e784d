package hrlfmt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// rotation is one OnRotate call, with what the segment held at that time.
type rotation struct {
	seq     uint64
	path    string
	summary Summary
	err     error
}

// recordRotations returns an OnRotate that verifies each segment as it is
// reported, and the list it fills.
func recordRotations() (func(uint64, string), *[]rotation) {
	var rs []rotation
	return func(seq uint64, path string) {
		s, err := VerifySegment(path)
		rs = append(rs, rotation{seq, path, s, err})
	}, &rs
}

func testOptions(dir string) WriterOptions {
	return WriterOptions{Dir: dir, Machine: "db1", Disk: "sda", DiskSize: 1 << 30, FirstSeq: 10}
}

// checkRotations checks that the segments were reported in order from
// first, each complete and durable when reported, and returns their records.
func checkRotations(t *testing.T, rs []rotation, first uint64) []Record {
	t.Helper()
	var all []Record
	for i, r := range rs {
		if r.seq != first+uint64(i) {
			t.Errorf("rotation %d: sequence %d, want %d", i, r.seq, first+uint64(i))
		}
		if filepath.Base(r.path) != SegmentName(r.seq) {
			t.Errorf("rotation %d: path %s for sequence %d", i, r.path, r.seq)
		}
		if r.err != nil || !r.summary.Complete {
			t.Errorf("rotation %d: segment not complete when reported: %v", i, r.err)
		}
		if r.summary.Header.Seq != r.seq || r.summary.Records == 0 {
			t.Errorf("rotation %d: header sequence %d, %d records", i, r.summary.Header.Seq, r.summary.Records)
		}
		_, recs, err := readAll(mustRead(t, r.path))
		if err != nil {
			t.Fatal(err)
		}
		if h := r.summary.Header; h.FirstGen != recs[0].Gen {
			t.Errorf("rotation %d: header says first generation %d, the first record has %d", i, h.FirstGen, recs[0].Gen)
		}
		all = append(all, recs...)
	}
	return all
}

// TestWriterRotateBySize: segments stay under MaxSegmentBytes, are reported
// in order once durable, and together hold every record in order.
func TestWriterRotateBySize(t *testing.T) {
	o := testOptions(t.TempDir())
	o.MaxSegmentBytes = 16 << 10
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	for i := range 20 {
		r := dataRec(int64(i)*4096, uint64(i/3), randomBytes(uint64(i), 4000))
		if i%5 == 4 {
			r = cutRec(CutCrash, uint64(i/3), goldenTime, fmt.Sprint("p", i))
		}
		want = append(want, r)
		if err := writeRecords(w, []Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := checkRotations(t, *rs, 10)
	// Four 4044-byte DATA records and the header and trailer fill 16296
	// bytes: 16 DATA records and 4 cuts need 4 or 5 segments.
	if n := len(*rs); n < 4 || n > 5 {
		t.Errorf("%d segments, want 4 or 5", n)
	}
	for _, r := range *rs {
		if fi, _ := os.Stat(r.path); fi.Size() > o.MaxSegmentBytes {
			t.Errorf("%s: %d bytes, more than %d", r.path, fi.Size(), o.MaxSegmentBytes)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records in the segments, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i], want[i]) {
			t.Errorf("record %d differs", i)
		}
	}
}

// TestWriterBigRecord: a record larger than MaxSegmentBytes gets a segment
// of its own.
func TestWriterBigRecord(t *testing.T) {
	o := testOptions(t.TempDir())
	o.MaxSegmentBytes = 4096
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		zeroRec(0, 1, 1, ZeroZeroed),
		dataRec(0, 1, randomBytes(1, 10000)),
		zeroRec(0, 1, 1, ZeroZeroed),
	}
	if err := writeRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRotations(t, *rs, 10)
	if len(*rs) != 3 {
		t.Fatalf("%d segments, want 3", len(*rs))
	}
	for i, r := range *rs {
		if r.summary.Records != 1 {
			t.Errorf("segment %d: %d records, want 1", i, r.summary.Records)
		}
	}
}

// TestWriterRotateByAge: with an injected clock, a segment is closed by the
// first write or RotateIfDue after MaxSegmentAge, not before; its header
// carries the clock's time and its first record's generation.
func TestWriterRotateByAge(t *testing.T) {
	clock := &fixedClock{t: goldenTime}
	o := testOptions(t.TempDir())
	o.Now = clock.Now
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.RotateIfDue(); ok || err != nil {
		t.Fatalf("RotateIfDue with no segment: %v, %v", ok, err)
	}
	write := func(gen uint64) {
		t.Helper()
		if err := w.WriteZero(0, 512, gen, ZeroDiscarded); err != nil {
			t.Fatal(err)
		}
	}
	write(5) // opens segment 10 at goldenTime
	clock.Advance(DefaultMaxSegmentAge - time.Nanosecond)
	write(6)
	if ok, err := w.RotateIfDue(); ok || err != nil || len(*rs) != 0 {
		t.Fatalf("rotated before the age: %v, %v", ok, err)
	}
	clock.Advance(time.Nanosecond)
	write(7) // segment 10 is 10 s old: closed, 11 opened
	if len(*rs) != 1 || (*rs)[0].summary.Records != 2 {
		t.Fatalf("after 10 s: %d rotations", len(*rs))
	}
	h := (*rs)[0].summary.Header
	if !h.Created.Equal(goldenTime) || h.FirstGen != 5 {
		t.Errorf("header of the first segment: created %v, first generation %d", h.Created, h.FirstGen)
	}
	clock.Advance(time.Hour) // no writes: only RotateIfDue closes it
	if ok, err := w.RotateIfDue(); !ok || err != nil {
		t.Fatalf("RotateIfDue after an hour: %v, %v", ok, err)
	}
	if ok, err := w.RotateIfDue(); ok || err != nil {
		t.Fatalf("RotateIfDue again: %v, %v", ok, err)
	}
	write(8) // segment 12
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRotations(t, *rs, 10)
	if len(*rs) != 3 {
		t.Fatalf("%d rotations, want 3", len(*rs))
	}
	h = (*rs)[1].summary.Header
	if !h.Created.Equal(goldenTime.Add(DefaultMaxSegmentAge)) || h.FirstGen != 7 {
		t.Errorf("header of the second segment: created %v, first generation %d", h.Created, h.FirstGen)
	}
}

// TestWriterRotateAndClose: Rotate with nothing open does nothing; Close
// reports the last segment; the closed Writer refuses everything.
func TestWriterRotateAndClose(t *testing.T) {
	o := testOptions(t.TempDir())
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil || len(*rs) != 0 {
		t.Fatalf("Rotate with nothing open: %v, %d rotations", err, len(*rs))
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCut(Cut{Kind: CutApp, Gen: 1, Time: goldenTime, PointID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil || len(*rs) != 1 {
		t.Fatalf("Rotate: %v, %d rotations", err, len(*rs))
	}
	if err := w.WriteZero(0, 1, 2, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil || len(*rs) != 2 {
		t.Fatalf("Close: %v, %d rotations", err, len(*rs))
	}
	checkRotations(t, *rs, 10)
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WriteZero(0, 1, 2, ZeroZeroed); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if err := w.Rotate(); !errors.Is(err, ErrClosed) {
		t.Errorf("Rotate after Close: %v", err)
	}
	if _, err := w.RotateIfDue(); !errors.Is(err, ErrClosed) {
		t.Errorf("RotateIfDue after Close: %v", err)
	}
}

// TestNewWriterOptions lists the options NewWriter refuses.
func TestNewWriterOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*WriterOptions)
	}{
		{"no directory", func(o *WriterOptions) { o.Dir = "" }},
		{"missing directory", func(o *WriterOptions) { o.Dir = filepath.Join(dir, "missing") }},
		{"a file", func(o *WriterOptions) { o.Dir = file }},
		{"no machine", func(o *WriterOptions) { o.Machine = "" }},
		{"no disk", func(o *WriterOptions) { o.Disk = "" }},
		{"no disk size", func(o *WriterOptions) { o.DiskSize = 0 }},
		{"negative segment size", func(o *WriterOptions) { o.MaxSegmentBytes = -1 }},
		{"negative segment age", func(o *WriterOptions) { o.MaxSegmentAge = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(dir)
			tt.change(&o)
			if _, err := NewWriter(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestNewWriterRefusesOverlap: a Writer never starts at or before a
// segment already in its directory.
func TestNewWriterRefusesOverlap(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, testHeader(10), []Record{zeroRec(0, 1, 1, ZeroZeroed)})
	for _, first := range []uint64{0, 9, 10} {
		o := testOptions(dir)
		o.FirstSeq = first
		if _, err := NewWriter(o); err == nil {
			t.Errorf("FirstSeq %d accepted over segment 10", first)
		}
	}
	o := testOptions(dir)
	o.FirstSeq = 11
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteZero(0, 1, 1, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterConcurrent: writers and a rotation ticker in parallel (run
// with -race) lose nothing and duplicate nothing.
func TestWriterConcurrent(t *testing.T) {
	o := testOptions(t.TempDir())
	o.MaxSegmentBytes = 64 << 10
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	var mu sync.Mutex
	clock := &fixedClock{t: goldenTime}
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock.Now() }
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				off := int64(g*each+i) * 4096
				if err := w.WriteData(off, uint64(g), textBytes(uint64(i), 3000)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			mu.Lock()
			clock.Advance(3 * time.Second)
			mu.Unlock()
			if _, err := w.RotateIfDue(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, r := range checkRotations(t, *rs, 10) {
		if seen[r.Offset] {
			t.Errorf("offset %d written twice", r.Offset)
		}
		seen[r.Offset] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d records, want %d", len(seen), writers*each)
	}
}

func TestSegmentName(t *testing.T) {
	if got := SegmentName(0x1f); got != "000000000000001f.hrl" {
		t.Errorf("SegmentName(0x1f) = %q", got)
	}
	for name, want := range map[string]bool{
		"000000000000001f.hrl": true, "ffffffffffffffff.hrl": true,
		"000000000000001F.hrl": false, "00000000000001f.hrl": false, "000000000000001f.hrl.torn": false,
		"000000000000001g.hrl": false, "+00000000000001f.hrl": false, "000000000000001f.HRL": false,
	} {
		seq, ok := ParseSegmentName(name)
		if ok != want {
			t.Errorf("ParseSegmentName(%q) ok = %v", name, ok)
		}
		if ok && SegmentName(seq) != name {
			t.Errorf("ParseSegmentName(%q) = %d", name, seq)
		}
	}
}

func TestWriterCurrent(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(WriterOptions{Dir: dir, Machine: "m", Disk: "d", DiskSize: 1 << 20, FirstSeq: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, ok := w.Current(); ok {
		t.Fatal("Current before any record reported a segment")
	}
	if err := w.WriteZero(0, 4096, 1, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	if seq, ok := w.Current(); !ok || seq != 7 {
		t.Fatalf("Current with segment 7 open = %d, %v", seq, ok)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if seq, ok := w.Current(); !ok || seq != 7 {
		t.Fatalf("Current after closing segment 7 = %d, %v", seq, ok)
	}
	if err := w.WriteZero(0, 4096, 1, ZeroZeroed); err != nil {
		t.Fatal(err)
	}
	if seq, ok := w.Current(); !ok || seq != 8 {
		t.Fatalf("Current with segment 8 open = %d, %v", seq, ok)
	}
}

// TestWriterRotateIfOlder: a segment younger than the age asked for stays
// open; one at least that old is sealed, whatever MaxSegmentAge is.
func TestWriterRotateIfOlder(t *testing.T) {
	clock := &fixedClock{t: goldenTime}
	o := testOptions(t.TempDir())
	o.Now = clock.Now
	var rs *[]rotation
	o.OnRotate, rs = recordRotations()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.RotateIfOlder(0); ok || err != nil {
		t.Fatalf("RotateIfOlder with no segment: %v, %v", ok, err)
	}
	if err := w.WriteZero(0, 512, 1, ZeroDiscarded); err != nil {
		t.Fatal(err)
	}
	clock.Advance(499 * time.Millisecond)
	if ok, err := w.RotateIfOlder(500 * time.Millisecond); ok || err != nil || len(*rs) != 0 {
		t.Fatalf("sealed a 499 ms old segment for an age of 500 ms: %v, %v", ok, err)
	}
	clock.Advance(time.Millisecond)
	if ok, err := w.RotateIfOlder(500 * time.Millisecond); !ok || err != nil || len(*rs) != 1 {
		t.Fatalf("500 ms old segment not sealed: %v, %v, %d rotations", ok, err, len(*rs))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRotations(t, *rs, 10)
}
