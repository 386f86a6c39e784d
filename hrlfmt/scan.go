package hrlfmt

import (
	"errors"
	"fmt"
	"io"
)

// Map is what a full check of a segment learnt of it: its header and every
// good record in order, each with its place in the segment, but without
// the data of DATA records. With a Map of a segment whose bytes have not
// changed since, a segment can be applied without decoding it again: a
// raw DATA record's bytes lie at DataSpan in the file, as they are to be
// written.
type Map struct {
	// Header is the segment's header (zero if it could not be read).
	Header Header
	// HeaderSize is the size of the header record in bytes.
	HeaderSize int64
	// Records are the good DATA, ZERO, CUT and NOTE records, in order,
	// with Data nil.
	Records []Record
	// Summary counts what Records hold, like VerifySegment's.
	Summary Summary
}

// Scan reads and checks a whole segment from rd, from its first byte, as
// VerifySegment does, keeping no data: it returns the segment's Map, which
// describes the good records before the error in any case, and the error
// Reader.Next would give (nil for a complete segment, whose trailer
// Summary.Complete reports). Scan reads rd to its end when the segment is
// good, so that a reader that copies what it gives (io.TeeReader) copies
// all of it.
func Scan(rd io.Reader) (*Map, error) {
	r, err := newReader(rd, "")
	if err != nil {
		return &Map{}, err
	}
	r.noData = true
	m := &Map{Header: r.Header(), HeaderSize: r.Offset()}
	err = m.fill(r, true)
	return m, err
}

// DataSpan returns where a DATA record's stored bytes lie in its segment:
// from offset off, n bytes. For a raw record (CompressNone) they are the
// extent's data; for lz4, a block that DecodeData uncompresses.
func (rec Record) DataSpan() (off, n int64) {
	return rec.Pos + RecordHeaderSize + dataFixedSize, rec.Size - RecordHeaderSize - dataFixedSize
}

// DecodeData returns the data of the DATA record rec of a Map from its
// stored bytes (as read at DataSpan), into dst when it has room: the
// stored bytes themselves for a raw record, else the lz4 block
// uncompressed. It checks only that the block fills the record's length:
// the record's checksums were checked when the Map was made.
func DecodeData(rec Record, stored, dst []byte) ([]byte, error) {
	if rec.Type != RecData {
		return nil, fmt.Errorf("%v record has no data", rec.Type)
	}
	switch rec.Compression {
	case CompressNone:
		if int64(len(stored)) != rec.Length {
			return nil, fmt.Errorf("%w: data record: %d bytes stored for a length of %d", ErrCorrupt, len(stored), rec.Length)
		}
		return stored, nil
	case CompressLZ4:
		if rec.Length <= 0 || rec.Length > MaxDataLength {
			return nil, fmt.Errorf("%w: data record: length %d", ErrCorrupt, rec.Length)
		}
		if int64(cap(dst)) < rec.Length {
			dst = make([]byte, rec.Length)
		}
		dst = dst[:rec.Length]
		if err := uncompress(stored, dst); err != nil {
			return nil, err
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%w: data record: unknown %v", ErrCorrupt, rec.Compression)
}

// fill reads the records of r until the end or an error into m's Summary,
// and into its Records if keep.
func (m *Map) fill(r *Reader, keep bool) error {
	s := &m.Summary
	s.Header = r.Header()
	for {
		rec, err := r.Next()
		if err != nil {
			s.ValidBytes = r.Offset()
			s.Complete = r.Complete()
			s.Skipped = int(r.st.records) - s.Records
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return err
		}
		s.Records++
		s.LastGen = max(s.LastGen, rec.Gen)
		switch rec.Type {
		case RecData:
			s.DataBytes += rec.Length
		case RecCut:
			s.Cuts = append(s.Cuts, *rec.Cut)
		case RecNote:
			s.Notes = append(s.Notes, *rec.Note)
		}
		if keep {
			m.Records = append(m.Records, rec)
		}
	}
}
