package hrlfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// maxNextAlloc bounds what one call to NewReader or Next may allocate
// whatever its input: a payload buffer grown by doubling to MaxPayload, and
// the uncompressed data of one record.
const maxNextAlloc = 2*MaxPayload + MaxDataLength + readBufferSize + 256<<10

// FuzzReader feeds arbitrary bytes to NewReader and Next. They must never
// panic; every error must be a *FormatError wrapping exactly one of the
// sentinels, at an offset inside the input; every record returned must have
// passed its checksums (checked again here, independently) and the rules of
// its type; and no call may allocate more than the format's limits allow,
// nor, unless it decompresses, more than the input could back.
func FuzzReader(f *testing.F) {
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		f.Add(mustRead(f, filepath.Join(fixtureDir, e.Name())))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Other goroutines of the fuzzing engine allocate too: a pass
		// over the limit is tried again, and only one that stays over
		// it every time fails.
		var over string
		for range 3 {
			if over = readChecked(t, in); over == "" {
				return
			}
		}
		t.Fatal(over)
	})
}

// readChecked reads the whole input and checks everything FuzzReader
// promises, failing t at once but for allocations: it returns the first
// call that allocated too much, or "".
func readChecked(t *testing.T, in []byte) (over string) {
	proportional := uint64(4*len(in) + readBufferSize + 256<<10)
	before := heapAllocs()
	r, err := NewReader(bytes.NewReader(in))
	if a := heapAllocs() - before; a > proportional {
		over = fmt.Sprintf("NewReader on %d bytes allocated %d", len(in), a)
	}
	if err != nil {
		checkFormatError(t, err, len(in))
		return over
	}
	if err := r.Header().Validate(); err != nil {
		t.Fatalf("header returned although invalid: %v", err)
	}
	if err := checkRecordBytes(in, 0); err != nil {
		t.Fatalf("header returned from a record that fails its checks: %v", err)
	}
	for {
		before := heapAllocs()
		rec, err := r.Next()
		a := heapAllocs() - before
		if a > maxNextAlloc && over == "" {
			over = fmt.Sprintf("Next allocated %d bytes, more than %d", a, maxNextAlloc)
		}
		if err == nil && rec.Compression != CompressLZ4 && a > proportional && over == "" {
			over = fmt.Sprintf("Next on %d bytes allocated %d for a %v record", len(in), a, rec.Type)
		}
		if err == io.EOF {
			if !r.Complete() {
				t.Fatal("io.EOF but not complete")
			}
			return over
		}
		if err != nil {
			checkFormatError(t, err, len(in))
			if _, again := r.Next(); again != err {
				t.Fatalf("error not sticky: %v, then %v", err, again)
			}
			return over
		}
		if err := checkRecordBytes(in, rec.Pos); err != nil {
			t.Fatalf("returned the record at %d, which fails its checks: %v", rec.Pos, err)
		}
		if RecordType(in[rec.Pos+4]) != rec.Type {
			t.Fatalf("record at %d returned as %v, stored as %v", rec.Pos, rec.Type, RecordType(in[rec.Pos+4]))
		}
		checkRecordRules(t, rec, r.Header().DiskSize)
	}
}

// checkFormatError checks an error of the reader on an in-memory input.
func checkFormatError(t *testing.T, err error, n int) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("not a *FormatError: %v", err)
	}
	kinds := 0
	for _, s := range []error{ErrTorn, ErrCorrupt, ErrVersion} {
		if errors.Is(err, s) {
			kinds++
		}
	}
	if kinds != 1 {
		t.Fatalf("%v wraps %d sentinels", err, kinds)
	}
	if fe.Offset < 0 || fe.Offset > int64(n) {
		t.Fatalf("%v: offset outside the %d-byte input", err, n)
	}
}

// checkRecordRules checks what a returned record promises.
func checkRecordRules(t *testing.T, rec Record, diskSize int64) {
	t.Helper()
	switch rec.Type {
	case RecData:
		if int64(len(rec.Data)) != rec.Length || rec.Length < 1 || rec.Length > MaxDataLength {
			t.Fatalf("data record of %d bytes, length %d", len(rec.Data), rec.Length)
		}
	case RecZero:
		if rec.Reason != ZeroZeroed && rec.Reason != ZeroDiscarded || rec.Length < 1 {
			t.Fatalf("zero record %+v", rec)
		}
	case RecCut:
		if rec.Cut == nil || rec.Cut.Validate() != nil || rec.Cut.Gen != rec.Gen {
			t.Fatalf("cut record %+v", rec)
		}
		return
	default:
		t.Fatalf("record of type %v returned", rec.Type)
	}
	if rec.Offset < 0 || rec.Length > diskSize-rec.Offset {
		t.Fatalf("extent [%d, +%d) outside a disk of %d", rec.Offset, rec.Length, diskSize)
	}
}

// memFile is a segment file in memory, for fuzzing without fsyncs.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Truncate(n int64) error { m.b = m.b[:n]; return nil }
func (m *memFile) Sync() error            { return nil }
func (m *memFile) Close() error           { return nil }

// FuzzRoundTrip runs programs of writes drawn from the input: what the
// writer accepts must read back unchanged and in order, and what it refuses
// must leave the segment as it was.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("\x00\x10\x00\x00\x00\x00\x10\x01hello hello hello hello"))
	f.Add([]byte("\x01\x00\x10\x00\x00\xff\x0f\x02ab\x41\x00\x00\x00\x00\x00\x02\x03\xc3\x00\x00\x00\x00\x10\x00\x04point-1"))
	f.Add([]byte("\x02\xff\xff\x0f\x00\xff\xff\x01\x82\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(bytes.Repeat([]byte{0x41, 0x00, 0x02, 0, 0, 0x40, 0, 0x07}, 20))
	f.Fuzz(func(t *testing.T, prog []byte) {
		const diskSize = 1 << 20
		h := Header{Version: Version, Machine: "fuzz", Disk: "d", DiskSize: diskSize, Seq: 1, Created: goldenTime}
		file := new(memFile)
		w, err := startSegment(file, "mem", "", h)
		if err != nil {
			t.Fatal(err)
		}
		take := func(n int) []byte {
			b := make([]byte, n)
			k := copy(b, prog)
			prog = prog[k:]
			return b
		}
		var want []Record
		for len(prog) > 0 && len(want) < 64 {
			op := take(1)[0]
			off := int64(int32(binary.LittleEndian.Uint32(take(4))))
			n := int(binary.LittleEndian.Uint16(take(2)))
			gen := uint64(take(1)[0])
			var r Record
			switch op % 4 {
			case 0: // bytes from the input: often incompressible
				r = dataRec(off, gen, take(n%4097))
			case 1: // a repeated pattern: compressible
				r = dataRec(off, gen, bytes.Repeat(take(1+int(op>>4)), n))
			case 2:
				r = zeroRec(off, int64(n)*int64(1+op>>5), gen, ZeroReason(op>>6))
			case 3:
				r = cutRec(CutKind(op>>6), gen, time.Unix(0, off*1e9), string(take(n%70)))
			}
			size := w.Size()
			if err := writeRecords(w, []Record{r}); err != nil {
				if w.Size() != size {
					t.Fatalf("a refused write (%v) changed the segment", err)
				}
				continue
			}
			want = append(want, r)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if w.Size() != int64(len(file.b)) {
			t.Fatalf("writer says %d bytes, wrote %d", w.Size(), len(file.b))
		}
		_, got, err := readAll(file.b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("read %d records, wrote %d", len(got), len(want))
		}
		for i := range want {
			if !sameRecord(got[i], want[i]) {
				t.Fatalf("record %d: read %+v, wrote %+v", i, got[i], want[i])
			}
		}
	})
}
