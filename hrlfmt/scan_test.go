package hrlfmt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzScan checks Scan against the Reader on arbitrary input: the same
// error, the same records without their data, a Summary like
// VerifySegment's, and for every DATA record DecodeData of the bytes at
// DataSpan gives the data the Reader returned.
func FuzzScan(f *testing.F) {
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		f.Add(mustRead(f, filepath.Join(fixtureDir, e.Name())))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScan(t, in)
	})
}

func checkScan(t *testing.T, in []byte) {
	t.Helper()
	m, serr := Scan(bytes.NewReader(in))
	if m == nil {
		t.Fatal("Scan returned no map")
	}
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		if serr == nil || serr.Error() != err.Error() {
			t.Fatalf("Scan error %v, Reader error %v", serr, err)
		}
		if len(m.Records) != 0 {
			t.Fatalf("%d records without a header", len(m.Records))
		}
		return
	}
	if m.Header != r.Header() || m.HeaderSize != r.Offset() {
		t.Fatalf("Scan header %+v (%d bytes), Reader's %+v (%d)", m.Header, m.HeaderSize, r.Header(), r.Offset())
	}
	var recs []Record
	var rerr error
	for {
		rec, err := r.Next()
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
		recs = append(recs, rec)
	}
	if (serr == nil) != (rerr == nil) || serr != nil && serr.Error() != rerr.Error() {
		t.Fatalf("Scan error %v, Reader error %v", serr, rerr)
	}
	if m.Summary.Complete != r.Complete() || m.Summary.ValidBytes != r.Offset() || m.Summary.Records != len(recs) {
		t.Fatalf("summary %+v; reader: complete %v, offset %d, %d records", m.Summary, r.Complete(), r.Offset(), len(recs))
	}
	if len(m.Records) != len(recs) {
		t.Fatalf("Scan gave %d records, the Reader %d", len(m.Records), len(recs))
	}
	for i, rec := range recs {
		got := m.Records[i]
		if got.Data != nil {
			t.Fatalf("record %d: Scan kept data", i)
		}
		data := rec.Data
		rec.Data = nil
		if got.Type != rec.Type || got.Pos != rec.Pos || got.Size != rec.Size || got.Offset != rec.Offset ||
			got.Length != rec.Length || got.Gen != rec.Gen || got.Compression != rec.Compression || got.Reason != rec.Reason ||
			(got.Cut == nil) != (rec.Cut == nil) || got.Cut != nil && *got.Cut != *rec.Cut ||
			(got.Note == nil) != (rec.Note == nil) || got.Note != nil && *got.Note != *rec.Note {
			t.Fatalf("record %d: Scan %+v, Reader %+v", i, got, rec)
		}
		if i+1 < len(recs) && rec.Pos+rec.Size > recs[i+1].Pos {
			t.Fatalf("record %d of %d bytes at %d overlaps the next at %d", i, rec.Size, rec.Pos, recs[i+1].Pos)
		}
		if rec.Type != RecData {
			continue
		}
		off, n := got.DataSpan()
		if off < rec.Pos || n <= 0 || off+n != rec.Pos+rec.Size || off+n > int64(len(in)) {
			t.Fatalf("record %d: data span [%d, +%d) outside the record [%d, +%d)", i, off, n, rec.Pos, rec.Size)
		}
		dec, err := DecodeData(got, in[off:off+n], nil)
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("record %d: DecodeData: %v, equal %v", i, err, bytes.Equal(dec, data))
		}
	}
}

// VerifySegment keeps no data, yet counts it and tells the same errors.
func TestVerifySegmentKeepsNoData(t *testing.T) {
	ents, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		path := filepath.Join(fixtureDir, e.Name())
		s, verr := VerifySegment(path)
		m, serr := Scan(bytes.NewReader(mustRead(t, path)))
		if (verr == nil) != (serr == nil) {
			t.Errorf("%s: VerifySegment %v, Scan %v", e.Name(), verr, serr)
		}
		var fe *FormatError
		if verr != nil && !errors.As(verr, &fe) {
			t.Errorf("%s: %v is no *FormatError", e.Name(), verr)
		}
		if s.DataBytes != m.Summary.DataBytes || s.Records != m.Summary.Records || s.Complete != m.Summary.Complete {
			t.Errorf("%s: VerifySegment %+v, Scan %+v", e.Name(), s, m.Summary)
		}
		var data int64
		for _, rec := range m.Records {
			if rec.Type == RecData {
				data += rec.Length
			}
		}
		if data != s.DataBytes {
			t.Errorf("%s: %d data bytes in the records, summary %d", e.Name(), data, s.DataBytes)
		}
	}
}
