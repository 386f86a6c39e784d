package hrlfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pierrec/lz4/v4"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// segFile is what a SegmentWriter needs of its file; tests substitute it to
// inject failures.
type segFile interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// SegmentWriter writes one segment file, crash-safely: the file is created
// exclusively, its header record first, every record goes to the file in a
// single write at the end of the previous one, and a write that fails is
// rolled back by truncating the file to its previous size. So whenever the
// process dies, the file is a valid segment up to its last whole record
// that reached the disk, which a reader reports as ErrTorn and Recover
// seals (or removes, if not even the header reached it).
//
// Records are durable after Sync; Close appends the trailer and makes the
// whole segment durable with two fsyncs (file, then directory). A
// SegmentWriter is not safe for concurrent use.
type SegmentWriter struct {
	f      segFile
	path   string
	dir    string // to fsync on Close; "" for none
	hdr    Header
	st     trailer // st.offset is the size of the file
	enc    encoder
	err    error // sticky: the file's state is unknown
	closed bool
	// dirSynced: the directory entry is durable (Sync fsynced dir).
	dirSynced bool
}

// CreateSegment creates the segment file path, which must not exist, and
// writes its header record. Nothing is fsynced yet: a segment is relied on
// only once sealed (Close fsyncs the file and then its directory, which
// makes the directory entry durable too) or synced (Sync does the same).
// After a crash before that, the file may be missing, empty or cut short,
// all of which Recover handles: it removes a file without a good header,
// and the next segment reuses its sequence number. A zero h.Version means
// Version; h.Minor is always set to MinorVersion.
func CreateSegment(path string, h Header) (*SegmentWriter, error) {
	if h.Version == 0 {
		h.Version = Version
	}
	h.Minor = MinorVersion
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	w, err := startSegment(f, path, filepath.Dir(path), h)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create segment: %w", err)
	}
	return w, nil
}

// startSegment writes the header record of a valid h to f, a new empty
// file. dir is the directory Sync and Close fsync, if not "".
func startSegment(f segFile, path, dir string, h Header) (*SegmentWriter, error) {
	w := &SegmentWriter{f: f, path: path, dir: dir, hdr: h}
	rec, crc := appendHeaderRecord(nil, h)
	if err := writeFull(f, rec, 0); err != nil {
		return nil, err
	}
	w.st.add(RecHeader, len(rec), crc, 0, 0)
	return w, nil
}

// Path returns the segment's path.
func (w *SegmentWriter) Path() string { return w.path }

// Header returns the segment's header as written.
func (w *SegmentWriter) Header() Header { return w.hdr }

// Size returns the size of the segment file: the header and the records
// written so far, and the trailer once closed.
func (w *SegmentWriter) Size() int64 { return int64(w.st.offset) }

// Records returns the number of records written after the header, not
// counting the trailer.
func (w *SegmentWriter) Records() int { return int(w.st.records) }

// WriteData appends a DATA record: the bytes of the disk at off, changed in
// generation gen. It stores them lz4-compressed when that is smaller, raw
// otherwise. data must hold 1 to MaxDataLength bytes that lie within the
// disk; the writer does not keep it.
func (w *SegmentWriter) WriteData(off int64, gen uint64, data []byte) error {
	if err := checkData(off, data, w.hdr.DiskSize); err != nil {
		return err
	}
	rec, crc := w.enc.data(off, gen, data)
	return w.writeRecord(rec, crc, RecData, gen, int64(len(data)))
}

// WriteZero appends a ZERO record: the n bytes of the disk at off read as
// zeros since generation gen, for the given reason.
func (w *SegmentWriter) WriteZero(off, n int64, gen uint64, reason ZeroReason) error {
	if err := checkZero(off, n, reason, w.hdr.DiskSize); err != nil {
		return err
	}
	rec, crc := w.enc.zero(off, n, gen, reason)
	return w.writeRecord(rec, crc, RecZero, gen, 0)
}

// WriteCut appends a CUT record.
func (w *SegmentWriter) WriteCut(c Cut) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write cut: %w", err)
	}
	rec, crc := w.enc.cut(c)
	return w.writeRecord(rec, crc, RecCut, c.Gen, 0)
}

// WriteNote appends a NOTE record (skippable) describing a point; write it
// before the point's CUT.
func (w *SegmentWriter) WriteNote(n Note) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("write note: %w", err)
	}
	rec, crc := w.enc.note(n)
	return w.writeRecord(rec, crc, RecNote, 0, 0)
}

// Sync makes the records written so far durable. If it fails, the writer
// is unusable: whether the records reached the disk is unknown.
func (w *SegmentWriter) Sync() error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("sync segment: %w", err)
		return w.err
	}
	if !w.dirSynced && w.dir != "" {
		// The file was created without an fsync of its directory entry.
		if err := fsutil.SyncDir(w.dir); err != nil {
			w.err = fmt.Errorf("sync segment directory: %w", err)
			return w.err
		}
		w.dirSynced = true
	}
	return nil
}

// Close appends the trailer, fsyncs the file, closes it and fsyncs its
// directory: when it returns nil, the whole segment is durable. A writer
// that has failed is closed without a trailer and Close returns its error.
// Closing twice returns ErrClosed.
func (w *SegmentWriter) Close() error {
	if w.closed {
		return fmt.Errorf("close segment: %w", ErrClosed)
	}
	w.closed = true
	if w.err != nil {
		w.f.Close()
		return w.err
	}
	rec := make([]byte, trailerRecordSize)
	w.st.marshal(rec[RecordHeaderSize:])
	sealRecord(rec, RecTrailer, 0)
	err := writeFull(w.f, rec, int64(w.st.offset))
	if err == nil {
		w.st.offset += trailerRecordSize
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && w.dir != "" {
		err = fsutil.SyncDir(w.dir)
	}
	if err != nil {
		w.err = fmt.Errorf("close segment: %w", err)
		return w.err
	}
	return nil
}

func (w *SegmentWriter) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// writeRecord appends one encoded record with a single write.
func (w *SegmentWriter) writeRecord(rec []byte, crc uint32, typ RecordType, gen uint64, dataLen int64) error {
	if err := w.usable(); err != nil {
		return err
	}
	size := int64(w.st.offset)
	if err := writeFull(w.f, rec, size); err != nil {
		// Take back whatever part of the record reached the file, so
		// that the segment stays valid up to its last record.
		if terr := w.f.Truncate(size); terr != nil {
			w.err = fmt.Errorf("write %v record: %w; roll back: %w", typ, err, terr)
			return w.err
		}
		return fmt.Errorf("write %v record: %w", typ, err)
	}
	w.st.add(typ, len(rec), crc, gen, dataLen)
	return nil
}

// writeFull writes b at off; a short write without an error is an error.
func writeFull(f io.WriterAt, b []byte, off int64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func checkData(off int64, data []byte, diskSize int64) error {
	if len(data) == 0 {
		return errors.New("write data: empty extent")
	}
	if len(data) > MaxDataLength {
		return fmt.Errorf("write data: %d bytes, more than %d", len(data), MaxDataLength)
	}
	if err := checkExtent(off, int64(len(data)), diskSize); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	return nil
}

func checkZero(off, n int64, reason ZeroReason, diskSize int64) error {
	if reason != ZeroZeroed && reason != ZeroDiscarded {
		return fmt.Errorf("write zero: unknown %v", reason)
	}
	if err := checkExtent(off, n, diskSize); err != nil {
		return fmt.Errorf("write zero: %w", err)
	}
	return nil
}

// encoder encodes records into a buffer it reuses: the record it returns is
// valid until its next call.
type encoder struct {
	buf  []byte
	comp *lz4.Compressor // allocated on first use: it is large
	// raw counts the lz4 attempts in a row (probes, or whole small
	// extents) that gained too little; skipped the attempts left out
	// since (see rawStreak).
	raw, skipped int
}

func (e *encoder) grow(n int) []byte {
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	return e.buf[:n]
}

// data encodes a DATA record whose arguments have been checked.
func (e *encoder) data(off int64, gen uint64, data []byte) ([]byte, uint32) {
	rec := e.grow(RecordHeaderSize + dataFixedSize + len(data))
	p := rec[RecordHeaderSize:]
	binary.LittleEndian.PutUint64(p[0:], uint64(off))
	binary.LittleEndian.PutUint64(p[8:], gen)
	binary.LittleEndian.PutUint32(p[16:], uint32(len(data)))
	p[21], p[22], p[23] = 0, 0, 0
	stored := p[dataFixedSize:]
	if e.comp == nil {
		e.comp = new(lz4.Compressor)
	}
	n := 0
	if e.attempt() && e.worthCompressing(data, stored) {
		// With a destination shorter than the input by the least gain
		// worth having, lz4 gives up (0 bytes, or an error) unless the
		// block is at least that much smaller.
		k, err := e.comp.CompressBlock(data, stored[:len(data)-minGain(len(data))])
		if err == nil && k > 0 && k <= len(data)-minGain(len(data)) {
			n = k
		}
		if len(data) < 2*probeBytes {
			e.judged(n > 0)
		}
	}
	if n > 0 {
		p[20] = byte(CompressLZ4)
	} else {
		p[20] = byte(CompressNone)
		n = copy(stored, data)
	}
	rec = rec[:RecordHeaderSize+dataFixedSize+n]
	return rec, sealRecord(rec, RecData, 0)
}

// Compression policy. lz4 costs about as much CPU per byte on data it
// shrinks by a few per cent (fio's buffers: 95 %, at about 200 MB/s per
// core) as the rest of the data path together, and the server pays again
// to decode it, so an extent is stored lz4-compressed only when that saves
// at least a tenth of it; otherwise it is stored raw (compression 0, which
// every reader of the format has always accepted). Extents longer than two
// probes are first judged by compressing probeBytes at their start and in
// their middle: if neither probe gains a tenth, the extent is stored raw
// without compressing the rest.
const (
	probeBytes = 4 << 10
	gainDiv    = 10 // the least gain is 1/gainDiv of the extent
)

// Probing adapts to the data: after rawStreak attempts in a row that gained
// too little (an extent's probes, or the whole of an extent too short to
// probe), only one extent in probeEvery is tried and the others are
// stored raw at once, until an attempt gains again. Data lz4 cannot shrink
// (encrypted or compressed data, fio's buffers) then costs almost no lz4
// CPU (the probes were 11 % of the agent's CPU at 200 MB/s of fio's 64 KiB
// writes), and data that turns compressible is found within probeEvery
// extents. Only compression is lost, never data.
const (
	rawStreak  = 16
	probeEvery = 16
)

// attempt reports whether the next extent is to be tried with lz4.
func (e *encoder) attempt() bool {
	if e.raw < rawStreak {
		return true
	}
	e.skipped++
	if e.skipped < probeEvery {
		return false
	}
	e.skipped = 0
	return true
}

// judged notes the outcome of an attempt.
func (e *encoder) judged(gained bool) {
	if gained {
		e.raw, e.skipped = 0, 0
	} else if e.raw < rawStreak {
		e.raw++
	}
}

// minGain is the least number of bytes lz4 must save on n bytes.
func minGain(n int) int { return max(1, n/gainDiv) }

// worthCompressing reports whether data is worth a full lz4 attempt; buf
// (at least len(data) bytes) is scratch space.
func (e *encoder) worthCompressing(data, buf []byte) bool {
	if len(data) < 2*probeBytes {
		return true
	}
	for _, at := range []int{0, len(data)/2 - probeBytes/2} {
		sample := data[at : at+probeBytes]
		k, err := e.comp.CompressBlock(sample, buf[:probeBytes-minGain(probeBytes)])
		if err == nil && k > 0 && k <= probeBytes-minGain(probeBytes) {
			e.judged(true)
			return true
		}
	}
	e.judged(false)
	return false
}

// zero encodes a ZERO record whose arguments have been checked.
func (e *encoder) zero(off, n int64, gen uint64, reason ZeroReason) ([]byte, uint32) {
	rec := e.grow(RecordHeaderSize + zeroPayloadSize)
	zeroPayload(rec[RecordHeaderSize:], off, n, gen, reason)
	return rec, sealRecord(rec, RecZero, 0)
}

// cut encodes a CUT record of a valid cut.
func (e *encoder) note(n Note) ([]byte, uint32) {
	rec := e.grow(RecordHeaderSize + noteFixedSize + len(n.PointID) + len(n.Text))
	notePayload(rec[RecordHeaderSize:], n)
	return rec, sealRecord(rec, RecNote, FlagSkippable)
}

func (e *encoder) cut(c Cut) ([]byte, uint32) {
	rec := e.grow(RecordHeaderSize + cutFixedSize + len(c.PointID))
	cutPayload(rec[RecordHeaderSize:], c)
	return rec, sealRecord(rec, RecCut, 0)
}
