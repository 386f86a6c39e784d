package hrlfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"
)

// recordWriter is what SegmentWriter and Writer have in common.
type recordWriter interface {
	WriteData(off int64, gen uint64, data []byte) error
	WriteZero(off, n int64, gen uint64, reason ZeroReason) error
	WriteCut(c Cut) error
}

// writeRecords writes recs, which use the fields of Record as arguments.
func writeRecords(w recordWriter, recs []Record) error {
	for _, r := range recs {
		var err error
		switch r.Type {
		case RecData:
			err = w.WriteData(r.Offset, r.Gen, r.Data)
		case RecZero:
			err = w.WriteZero(r.Offset, r.Length, r.Gen, r.Reason)
		case RecCut:
			err = w.WriteCut(*r.Cut)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dataRec, zeroRec and cutRec build records as writeRecords takes them and
// as a Reader returns them (but for Pos and Compression).
func dataRec(off int64, gen uint64, data []byte) Record {
	return Record{Type: RecData, Offset: off, Length: int64(len(data)), Gen: gen, Data: data}
}

func zeroRec(off, n int64, gen uint64, reason ZeroReason) Record {
	return Record{Type: RecZero, Offset: off, Length: n, Gen: gen, Reason: reason}
}

func cutRec(kind CutKind, gen uint64, t time.Time, id string) Record {
	return Record{Type: RecCut, Gen: gen, Cut: &Cut{Kind: kind, Gen: gen, Time: t, PointID: id}}
}

// sameRecord reports whether got, read back, is want, written.
func sameRecord(got, want Record) bool {
	if got.Type != want.Type || got.Offset != want.Offset || got.Length != want.Length ||
		got.Gen != want.Gen || got.Reason != want.Reason || !bytes.Equal(got.Data, want.Data) {
		return false
	}
	if (got.Cut == nil) != (want.Cut == nil) {
		return false
	}
	if got.Cut != nil {
		g, w := *got.Cut, *want.Cut
		if g.Kind != w.Kind || g.Gen != w.Gen || !g.Time.Equal(w.Time) || g.PointID != w.PointID {
			return false
		}
	}
	return true
}

// readAll reads every record of a segment in memory; err is what ended it
// (nil for a clean end).
func readAll(seg []byte) (Header, []Record, error) {
	r, err := NewReader(bytes.NewReader(seg))
	if err != nil {
		return Header{}, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), recs, nil
		}
		if err != nil {
			return r.Header(), recs, err
		}
		recs = append(recs, rec)
	}
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// textBytes returns n bytes of compressible text, the same for the same seed:
// words drawn at random from a small vocabulary, as in a log file.
func textBytes(seed uint64, n int) []byte {
	words := []string{"lifeboat ", "replica ", "journal ", "segment ", "extent ", "block ", "0x1f00 ", "ok\n", "write ", "cut "}
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// frame is the byte range of one record in a segment.
type frame struct{ start, end int }

// frames splits a well-formed segment into its records, trusting its length
// fields (for fixtures made from the golden segment only).
func frames(seg []byte) []frame {
	var fs []frame
	for off := 0; off+RecordHeaderSize <= len(seg); {
		n := int(binary.LittleEndian.Uint32(seg[off+8:]))
		fs = append(fs, frame{off, off + RecordHeaderSize + n})
		off += RecordHeaderSize + n
	}
	return fs
}

// checkRecordBytes checks, independently of the reader, that the record at
// pos in seg has a good magic, header checksum and record checksum.
func checkRecordBytes(seg []byte, pos int64) error {
	if pos < 0 || pos+RecordHeaderSize > int64(len(seg)) {
		return errors.New("record header outside the segment")
	}
	h := seg[pos : pos+RecordHeaderSize]
	if string(h[:4]) != "LBHR" {
		return errors.New("bad magic")
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	if crc32.Checksum(h[:12], tab) != binary.LittleEndian.Uint32(h[12:]) {
		return errors.New("bad header checksum")
	}
	end := pos + RecordHeaderSize + int64(binary.LittleEndian.Uint32(h[8:]))
	if end > int64(len(seg)) {
		return errors.New("payload outside the segment")
	}
	all := append(append([]byte(nil), h[:12]...), seg[pos+RecordHeaderSize:end]...)
	if crc32.Checksum(all, tab) != binary.LittleEndian.Uint32(h[16:]) {
		return errors.New("bad record checksum")
	}
	return nil
}

// heapAllocs returns the bytes allocated on the heap so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// readAllocs returns how many bytes reading seg to its end allocates: the
// least of a few runs, as other goroutines may allocate meanwhile.
func readAllocs(seg []byte) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		before := heapAllocs()
		readAll(seg)
		least = min(least, heapAllocs()-before)
	}
	return least
}

// fixedClock is a clock that tests move by hand.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time          { return c.t }
func (c *fixedClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// mustRead returns the bytes of a file.
func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSegment writes recs to a new segment file in dir and closes it.
func writeSegment(t testing.TB, dir string, h Header, recs []Record) string {
	t.Helper()
	path := filepath.Join(dir, SegmentName(h.Seq))
	w, err := CreateSegment(path, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
