package hrlfmt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"time"

	"github.com/pierrec/lz4/v4"
)

// readBufferSize is the size of the Reader's read buffer.
const readBufferSize = 64 << 10

// Reader reads the records of one segment in order and checks everything:
// each record's checksums and lengths before its payload is used, the
// trailer against what came before it, and that nothing follows the
// trailer. A Reader is not safe for concurrent use.
type Reader struct {
	file   string
	closer io.Closer
	br     *bufio.Reader
	hdr    Header
	off    int64   // end of the last good record
	buf    []byte  // payload buffer, reused
	st     trailer // running state over the good records
	done   bool    // trailer checked, io.EOF returned
	err    error   // sticky
	// noData: DATA records come without their data (Record.Data nil),
	// checked all the same (an lz4 block is decoded into scratch).
	noData  bool
	scratch []byte
}

// OpenSegment opens the segment at path and reads and checks its header.
// Errors in the segment are *FormatError values that name path.
func OpenSegment(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	r, err := newReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads and checks the header of the segment that rd delivers,
// from its first byte. Errors in the segment are *FormatError values.
func NewReader(rd io.Reader) (*Reader, error) {
	return newReader(rd, "")
}

func newReader(rd io.Reader, file string) (*Reader, error) {
	r := &Reader{file: file, br: bufio.NewReaderSize(rd, readBufferSize)}
	h, p, err := r.readRecord(true)
	if err != nil {
		return nil, err
	}
	hdr, err := parseHeader(p)
	if err != nil {
		return nil, r.formatErr(0, err)
	}
	r.hdr = hdr
	r.st.add(RecHeader, h.size, h.crc, 0, 0)
	r.off = int64(h.size)
	return r, nil
}

// Header returns the segment's header.
func (r *Reader) Header() Header { return r.hdr }

// Offset returns the offset just after the last good record read (the
// header counts): the number of bytes of the segment known to be valid.
// After Next has failed with a *FormatError, it equals the error's Offset.
func (r *Reader) Offset() int64 { return r.off }

// Complete reports whether the segment's trailer has been read and checked
// and nothing followed it: Next has returned io.EOF.
func (r *Reader) Complete() bool { return r.done }

// Close closes the file that OpenSegment opened; for a NewReader it does
// nothing.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	err := r.closer.Close()
	r.closer = nil
	return err
}

// Next returns the next DATA, ZERO or CUT record. Records of unknown types
// marked skippable are checked and skipped. At the end of a complete
// segment (a good trailer, then nothing) it returns io.EOF. Otherwise it
// fails with a *FormatError that wraps ErrTorn, ErrCorrupt or ErrVersion,
// or with an I/O error. Errors are sticky: later calls return the same.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	for {
		pos := r.off
		h, p, err := r.readRecord(false)
		if err != nil {
			return Record{}, err
		}
		var rec Record
		switch h.typ {
		case RecData:
			rec, err = r.parseData(p)
		case RecZero:
			rec, err = parseZero(p, r.hdr.DiskSize)
		case RecCut:
			rec, err = parseCut(p)
		case RecNote:
			rec, err = parseNote(p)
		case RecTrailer:
			if err := r.checkTrailer(p); err != nil {
				return Record{}, r.formatErr(pos, err)
			}
			r.off += int64(h.size)
			// Nothing may follow the trailer.
			if _, err := r.br.Peek(1); err == nil {
				return Record{}, r.formatErr(r.off, fmt.Errorf("%w: data after the trailer", ErrCorrupt))
			} else if err != io.EOF {
				return Record{}, fmt.Errorf("read segment at offset %d: %w", r.off, err)
			}
			r.done = true
			return Record{}, io.EOF
		default:
			if h.flags&FlagSkippable == 0 {
				err = fmt.Errorf("%w: record of unknown %v, not marked skippable", ErrVersion, h.typ)
				break
			}
			r.st.add(h.typ, h.size, h.crc, 0, 0)
			r.off += int64(h.size)
			continue
		}
		if err != nil {
			return Record{}, r.formatErr(pos, err)
		}
		rec.Type = h.typ
		rec.Pos = pos
		rec.Size = int64(h.size)
		var dataBytes int64
		if h.typ == RecData {
			dataBytes = rec.Length
		}
		r.st.add(h.typ, h.size, h.crc, rec.Gen, dataBytes)
		r.off += int64(h.size)
		return rec, nil
	}
}

// recordHead is what readRecord learnt from a record header.
type recordHead struct {
	typ   RecordType
	flags uint8
	size  int // of the whole record
	crc   uint32
}

// readRecord reads the record at r.off and checks its header checksum,
// length and record checksum. It returns the payload in r.buf (valid until
// the next call) and does not advance r.off.
func (r *Reader) readRecord(first bool) (recordHead, []byte, error) {
	pos := r.off
	var hb [RecordHeaderSize]byte
	_, err := io.ReadFull(r.br, hb[:])
	switch {
	case err == io.EOF && first:
		return recordHead{}, nil, r.torn(pos, "empty segment")
	case err == io.EOF:
		return recordHead{}, nil, r.torn(pos, "no trailer")
	case err == io.ErrUnexpectedEOF:
		return recordHead{}, nil, r.torn(pos, "segment ends inside a record header")
	case err != nil:
		return recordHead{}, nil, fmt.Errorf("read segment at offset %d: %w", pos, err)
	}
	hcrc := crc32.Checksum(hb[:12], castagnoli)
	if string(hb[:4]) != recordMagic || hcrc != binary.LittleEndian.Uint32(hb[12:]) {
		// A bad record header with nothing but zeros after it is what an
		// interrupted append leaves, or a file system that kept the new
		// size of the file but not its last blocks.
		last, err := r.restIsZero()
		if err != nil {
			return recordHead{}, nil, fmt.Errorf("read segment at offset %d: %w", pos, err)
		}
		switch {
		case last && hb == [RecordHeaderSize]byte{}:
			return recordHead{}, nil, r.torn(pos, "zero-filled tail")
		case last:
			return recordHead{}, nil, r.torn(pos, "bad record header at the end of the segment")
		case string(hb[:4]) != recordMagic && first:
			return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: not an hrl segment: bad magic %q", ErrCorrupt, hb[:4]))
		case string(hb[:4]) != recordMagic:
			return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: bad record magic %q", ErrCorrupt, hb[:4]))
		}
		return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: record header checksum mismatch", ErrCorrupt))
	}
	h := recordHead{typ: RecordType(hb[4]), flags: hb[5]}
	if first && h.typ != RecHeader {
		return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: first record is %v, not a header", ErrCorrupt, h.typ))
	}
	if !first && h.typ == RecHeader {
		return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: a second header record", ErrCorrupt))
	}
	if hb[6] != 0 || hb[7] != 0 {
		return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: reserved record header bytes are not zero", ErrCorrupt))
	}
	n := binary.LittleEndian.Uint32(hb[8:])
	if err := checkLength(h.typ, n); err != nil {
		return recordHead{}, nil, r.formatErr(pos, err)
	}
	p, err := r.readPayload(int(n))
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return recordHead{}, nil, r.torn(pos, "segment ends inside a record payload")
	} else if err != nil {
		return recordHead{}, nil, fmt.Errorf("read segment at offset %d: %w", pos, err)
	}
	h.crc = crc32.Update(hcrc, castagnoli, p)
	if h.crc != binary.LittleEndian.Uint32(hb[16:]) {
		// A bad last record is what an interrupted append leaves.
		last, err := r.restIsZero()
		if err != nil {
			return recordHead{}, nil, fmt.Errorf("read segment at offset %d: %w", pos, err)
		}
		if last {
			return recordHead{}, nil, r.torn(pos, "checksum mismatch in the last record")
		}
		return recordHead{}, nil, r.formatErr(pos, fmt.Errorf("%w: record checksum mismatch", ErrCorrupt))
	}
	h.size = RecordHeaderSize + int(n)
	return h, p, nil
}

// checkLength checks a payload length against the bounds of its type,
// before anything of that length is allocated or read.
func checkLength(typ RecordType, n uint32) error {
	lo, hi := uint32(0), uint32(MaxPayload)
	switch typ {
	case RecHeader:
		lo = 4 // the version, whatever the version
	case RecData:
		lo = dataFixedSize + 1
	case RecZero:
		lo, hi = zeroPayloadSize, zeroPayloadSize
	case RecCut:
		lo, hi = cutFixedSize+1, cutFixedSize+MaxPointIDLength
	case RecNote:
		lo, hi = noteFixedSize+1, noteFixedSize+MaxPointIDLength+MaxNoteLength
	case RecTrailer:
		lo, hi = trailerSize, trailerSize
	}
	if n < lo || n > hi {
		return fmt.Errorf("%w: %v record with a payload of %d bytes, want %d to %d", ErrCorrupt, typ, n, lo, hi)
	}
	return nil
}

// readPayload reads n bytes into r.buf. It grows the buffer as data
// arrives, so a length the input cannot back costs no more memory than the
// input holds (twice over at most).
func (r *Reader) readPayload(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(max(2*cap(buf), readBufferSize), n))
			copy(nb, buf)
			buf = nb
		}
		k, err := io.ReadFull(r.br, buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			r.buf = buf
			return nil, err
		}
	}
	r.buf = buf
	return buf, nil
}

// restIsZero reads the rest of the input and reports whether it is empty or
// all zero bytes. It stops at the first non-zero byte.
func (r *Reader) restIsZero() (bool, error) {
	for {
		b, err := r.br.Peek(r.br.Size())
		if len(bytes.TrimLeft(b, "\x00")) != 0 {
			return false, nil
		}
		r.br.Discard(len(b))
		if err == io.EOF {
			return true, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return false, err
		}
	}
}

// checkTrailer checks a trailer's payload against the records before it.
func (r *Reader) checkTrailer(p []byte) error {
	t := unmarshalTrailer(p)
	w := r.st
	var what string
	switch {
	case t.offset != w.offset:
		what = fmt.Sprintf("trailer at offset %d says %d", w.offset, t.offset)
	case t.records != w.records:
		what = fmt.Sprintf("trailer counts %d records, the segment has %d", t.records, w.records)
	case t.dataBytes != w.dataBytes:
		what = fmt.Sprintf("trailer counts %d data bytes, the segment has %d", t.dataBytes, w.dataBytes)
	case t.lastGen != w.lastGen:
		what = fmt.Sprintf("trailer says last generation %d, the segment has %d", t.lastGen, w.lastGen)
	case t.chain != w.chain:
		what = fmt.Sprintf("trailer chain checksum %08x, the records give %08x", t.chain, w.chain)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrCorrupt, what)
}

// parseData parses a DATA record's payload p: its data uncompressed into a
// new slice, or with noData checked and dropped.
func (r *Reader) parseData(p []byte) (Record, error) {
	diskSize := r.hdr.DiskSize
	off := binary.LittleEndian.Uint64(p[0:])
	gen := binary.LittleEndian.Uint64(p[8:])
	n := binary.LittleEndian.Uint32(p[16:])
	comp := Compression(p[20])
	if p[21]|p[22]|p[23] != 0 {
		return Record{}, fmt.Errorf("%w: data record: reserved bytes are not zero", ErrCorrupt)
	}
	if n == 0 || n > MaxDataLength {
		return Record{}, fmt.Errorf("%w: data record: length %d, want 1 to %d", ErrCorrupt, n, MaxDataLength)
	}
	if off > math.MaxInt64 {
		return Record{}, fmt.Errorf("%w: data record: offset %d out of range", ErrCorrupt, off)
	}
	if err := checkExtent(int64(off), int64(n), diskSize); err != nil {
		return Record{}, fmt.Errorf("%w: data record: %v", ErrCorrupt, err)
	}
	stored := p[dataFixedSize:]
	var data []byte
	switch comp {
	case CompressNone:
		if len(stored) != int(n) {
			return Record{}, fmt.Errorf("%w: data record: %d bytes stored for a length of %d", ErrCorrupt, len(stored), n)
		}
		if !r.noData {
			data = bytes.Clone(stored)
		}
	case CompressLZ4:
		// n is bounded by MaxDataLength above; the output must fill it.
		if r.noData {
			if cap(r.scratch) < int(n) {
				r.scratch = make([]byte, n)
			}
			data = r.scratch[:n]
		} else {
			data = make([]byte, n)
		}
		if err := uncompress(stored, data); err != nil {
			return Record{}, err
		}
		if r.noData {
			data = nil
		}
	default:
		return Record{}, fmt.Errorf("%w: data record: unknown %v", ErrCorrupt, comp)
	}
	return Record{Offset: int64(off), Length: int64(n), Gen: gen, Data: data, Compression: comp}, nil
}

// uncompress decodes the lz4 block stored, which must fill dst exactly.
func uncompress(stored, dst []byte) error {
	k, err := lz4.UncompressBlock(stored, dst)
	if err != nil {
		return fmt.Errorf("%w: data record: lz4: %v", ErrCorrupt, err)
	}
	if k != len(dst) {
		return fmt.Errorf("%w: data record: lz4 block gives %d bytes, want %d", ErrCorrupt, k, len(dst))
	}
	return nil
}

func parseZero(p []byte, diskSize int64) (Record, error) {
	off := binary.LittleEndian.Uint64(p[0:])
	n := binary.LittleEndian.Uint64(p[8:])
	gen := binary.LittleEndian.Uint64(p[16:])
	reason := ZeroReason(p[24])
	if p[25]|p[26]|p[27] != 0 {
		return Record{}, fmt.Errorf("%w: zero record: reserved bytes are not zero", ErrCorrupt)
	}
	if reason != ZeroZeroed && reason != ZeroDiscarded {
		return Record{}, fmt.Errorf("%w: zero record: unknown %v", ErrCorrupt, reason)
	}
	if off > math.MaxInt64 || n > math.MaxInt64 {
		return Record{}, fmt.Errorf("%w: zero record: extent [%d, +%d) out of range", ErrCorrupt, off, n)
	}
	if err := checkExtent(int64(off), int64(n), diskSize); err != nil {
		return Record{}, fmt.Errorf("%w: zero record: %v", ErrCorrupt, err)
	}
	return Record{Offset: int64(off), Length: int64(n), Gen: gen, Reason: reason}, nil
}

func parseCut(p []byte) (Record, error) {
	c := Cut{
		Gen:  binary.LittleEndian.Uint64(p[0:]),
		Time: time.Unix(0, int64(binary.LittleEndian.Uint64(p[8:]))).UTC(),
		Kind: CutKind(p[16]),
	}
	n := int(p[17])
	if p[18]|p[19] != 0 {
		return Record{}, fmt.Errorf("%w: cut record: reserved bytes are not zero", ErrCorrupt)
	}
	if len(p) != cutFixedSize+n {
		return Record{}, fmt.Errorf("%w: cut record: point id of %d bytes in a payload of %d", ErrCorrupt, n, len(p))
	}
	c.PointID = string(p[cutFixedSize:])
	if err := c.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return Record{Gen: c.Gen, Cut: &c}, nil
}

func parseNote(p []byte) (Record, error) {
	n := int(p[8])
	if p[9]|p[10]|p[11] != 0 {
		return Record{}, fmt.Errorf("%w: note record: reserved bytes are not zero", ErrCorrupt)
	}
	if n == 0 || noteFixedSize+n > len(p) {
		return Record{}, fmt.Errorf("%w: note record: point id of %d bytes in a payload of %d", ErrCorrupt, n, len(p))
	}
	note := Note{
		Freeze:  time.Duration(binary.LittleEndian.Uint64(p[0:])),
		PointID: string(p[noteFixedSize : noteFixedSize+n]),
		Text:    string(p[noteFixedSize+n:]),
	}
	if err := note.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return Record{Note: &note}, nil
}

func (r *Reader) torn(pos int64, what string) error {
	return r.formatErr(pos, fmt.Errorf("%w: %s", ErrTorn, what))
}

func (r *Reader) formatErr(pos int64, err error) error {
	return &FormatError{File: r.file, Offset: pos, Err: err}
}

// Summary describes a segment that VerifySegment has read.
type Summary struct {
	// Header is the segment's header (zero if it could not be read).
	Header Header
	// Records counts the good DATA, ZERO and CUT records.
	Records int
	// Skipped counts the good records of unknown, skippable types.
	Skipped int
	// DataBytes is the sum of the uncompressed lengths of the good DATA
	// records.
	DataBytes int64
	// LastGen is the highest generation of the good records.
	LastGen uint64
	// Cuts lists the good CUT records in order.
	Cuts []Cut
	// Notes are the NOTE records, in order.
	Notes []Note
	// ValidBytes is the length of the valid prefix of the segment: all of
	// it when Complete, else the Offset of the error.
	ValidBytes int64
	// Complete reports whether the segment ended with a good trailer and
	// nothing after it.
	Complete bool
}

// VerifySegment reads and checks the whole segment at path, keeping no
// data. Its error is what Reader.Next would return (nil for a complete
// segment); the Summary describes the good records before it in any case.
func VerifySegment(path string) (Summary, error) {
	s, _, err := verify(path)
	return s, err
}

// verify is VerifySegment that also returns the running trailer state at
// the end of the valid prefix.
func verify(path string) (Summary, trailer, error) {
	r, err := OpenSegment(path)
	if err != nil {
		return Summary{}, trailer{}, err
	}
	defer r.Close()
	r.noData = true
	var m Map
	err = m.fill(r, false)
	return m.Summary, r.st, err
}
