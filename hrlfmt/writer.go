package hrlfmt

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of WriterOptions.
const (
	// DefaultMaxSegmentBytes is the default of WriterOptions.MaxSegmentBytes.
	DefaultMaxSegmentBytes = 64 << 20
	// DefaultMaxSegmentAge is the default of WriterOptions.MaxSegmentAge.
	DefaultMaxSegmentAge = 10 * time.Second
)

// SegmentName returns the file name of the segment with sequence number
// seq: 16 lowercase hex digits and ".hrl", so that names sort in sequence
// order.
func SegmentName(seq uint64) string {
	return fmt.Sprintf("%016x.hrl", seq)
}

// ParseSegmentName returns the sequence number of a segment file name as
// SegmentName makes it, and false for any other name.
func ParseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".hrl")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Dir is the directory of the segments; it must exist.
	Dir string
	// Machine, Disk and DiskSize go into every segment's header.
	Machine, Disk string
	DiskSize      int64
	// MaxSegmentBytes bounds the size of a segment: a record that would
	// take a segment that has records beyond it goes to a new segment.
	// A single record larger than it gets a segment of its own.
	// 0 means DefaultMaxSegmentBytes.
	MaxSegmentBytes int64
	// MaxSegmentAge bounds how long a segment stays open: the first write
	// (or RotateIfDue call) after a segment has reached this age closes it.
	// 0 means DefaultMaxSegmentAge.
	MaxSegmentAge time.Duration
	// FirstSeq is the sequence number of the first segment; no segment
	// with that number or a higher one may be in Dir (see Recover).
	FirstSeq uint64
	// OnRotate, if set, is called with each segment's sequence number and
	// path once the segment is closed and durable, in sequence order. It
	// runs with the Writer locked: it must not call the Writer.
	OnRotate func(seq uint64, path string)
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time

	// Memory builds the segments in memory instead of files in Dir (which
	// is then unused): nothing is written to the local disks. Each sealed
	// segment is handed to OnSealed, whose callee owns its bytes from then
	// on. Buffer, if set, supplies the memory of a new segment (a slice to
	// append to, typically given back by the callee of OnSealed once the
	// server acknowledged it), so that segments reuse their memory.
	Memory   bool
	OnSealed func(seq uint64, seg []byte)
	Buffer   func() []byte
}

// Writer writes the journal of one disk as a directory of segments, named
// by SegmentName. It opens a segment at the first record written after the
// previous one was closed (so no segment is empty), closes it when it is
// full or old enough, and reports each closed segment through OnRotate.
// Its methods are safe for concurrent use.
//
// After a crash, the last segment may have no trailer: run Recover on the
// directory and start the next Writer at the sequence number it returns.
// After an error that leaves a segment in an unknown state (a failed fsync
// or close), the Writer refuses every further write with that error.
type Writer struct {
	mu     sync.Mutex
	o      WriterOptions
	seg    *SegmentWriter // nil between segments
	born   time.Time      // when seg was created
	seq    uint64         // of seg, or of the next segment
	spent  bool           // the last sequence number has been used
	enc    encoder
	err    error // sticky
	closed bool
}

// NewWriter checks the options and returns a Writer. It creates no file
// until the first record is written.
func NewWriter(o WriterOptions) (*Writer, error) {
	if o.Memory {
		return newMemoryWriter(o)
	}
	if o.Dir == "" {
		return nil, errors.New("new writer: no directory")
	}
	fi, err := os.Stat(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("new writer: %s is not a directory", o.Dir)
	}
	h := Header{Version: Version, Machine: o.Machine, Disk: o.Disk, DiskSize: o.DiskSize, Created: time.Unix(0, 1)}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	switch {
	case o.MaxSegmentBytes < 0:
		return nil, fmt.Errorf("new writer: negative segment size %d", o.MaxSegmentBytes)
	case o.MaxSegmentBytes == 0:
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	switch {
	case o.MaxSegmentAge < 0:
		return nil, fmt.Errorf("new writer: negative segment age %v", o.MaxSegmentAge)
	case o.MaxSegmentAge == 0:
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	seqs, err := listSegments(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	if n := len(seqs); n > 0 && seqs[n-1] >= o.FirstSeq {
		return nil, fmt.Errorf("new writer: %s already holds segment %s, at or after the first sequence number %d: recover the directory and start after it",
			o.Dir, SegmentName(seqs[n-1]), o.FirstSeq)
	}
	return &Writer{o: o, seq: o.FirstSeq}, nil
}

// WriteData writes a DATA record (see SegmentWriter.WriteData), rotating
// first when the current segment is full or old.
func (w *Writer) WriteData(off int64, gen uint64, data []byte) error {
	if err := checkData(off, data, w.o.DiskSize); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	rec, crc := w.enc.data(off, gen, data)
	return w.write(rec, crc, RecData, gen, int64(len(data)))
}

// WriteZero writes a ZERO record (see SegmentWriter.WriteZero), rotating
// first when the current segment is full or old.
func (w *Writer) WriteZero(off, n int64, gen uint64, reason ZeroReason) error {
	if err := checkZero(off, n, reason, w.o.DiskSize); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	rec, crc := w.enc.zero(off, n, gen, reason)
	return w.write(rec, crc, RecZero, gen, 0)
}

// WriteCut writes a CUT record into the current segment, rotating first
// when it is full or old. A caller that wants the point shipped at once
// calls Rotate after it.
func (w *Writer) WriteCut(c Cut) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write cut: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	rec, crc := w.enc.cut(c)
	return w.write(rec, crc, RecCut, c.Gen, 0)
}

// WriteNote appends a NOTE record describing a point; write it before the
// point's CUT, into the same segment (nothing rotates in between unless the
// segment is full).
func (w *Writer) WriteNote(n Note) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("write note: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	rec, crc := w.enc.note(n)
	return w.write(rec, crc, RecNote, 0, 0)
}

// Rotate closes the current segment, if one is open; the next record opens
// a new one.
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.seg == nil {
		return nil
	}
	return w.rotate()
}

// RotateIfDue closes the current segment if it has reached MaxSegmentAge,
// and reports whether it did. Call it from a ticker, so that the changes of
// a disk that has gone quiet are shipped within MaxSegmentAge.
func (w *Writer) RotateIfDue() (bool, error) {
	return w.RotateIfOlder(w.o.MaxSegmentAge)
}

// RotateIfOlder closes the current segment if it is at least age old, and
// reports whether it did. A caller that knows no more records are coming
// soon seals a segment younger than MaxSegmentAge with it, so that its
// records travel sooner.
func (w *Writer) RotateIfOlder(age time.Duration) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return false, err
	}
	if w.seg == nil || w.o.Now().Sub(w.born) < age {
		return false, nil
	}
	return true, w.rotate()
}

// Current returns the sequence number of the segment holding the last
// record written: the open segment, or the last one closed. ok is false
// before the first record.
func (w *Writer) Current() (seq uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.seg != nil, w.spent:
		return w.seq, true
	case w.seq > w.o.FirstSeq:
		return w.seq - 1, true
	}
	return 0, false
}

// Sync makes the records written so far durable.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.seg == nil {
		return nil
	}
	return w.seg.Sync()
}

// Close closes the current segment, if one is open (OnRotate sees it),
// and the Writer. Closing twice returns ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("close writer: %w", ErrClosed)
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.seg == nil {
		return nil
	}
	return w.rotate()
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// write appends an encoded record, rotating and opening segments as needed.
func (w *Writer) write(rec []byte, crc uint32, typ RecordType, gen uint64, dataLen int64) error {
	if w.seg != nil && w.seg.Records() > 0 {
		full := w.seg.Size()+int64(len(rec))+trailerRecordSize > w.o.MaxSegmentBytes
		old := w.o.Now().Sub(w.born) >= w.o.MaxSegmentAge
		if full || old {
			if err := w.rotate(); err != nil {
				return err
			}
		}
	}
	if w.seg == nil {
		if w.spent {
			return fmt.Errorf("open segment: sequence numbers exhausted")
		}
		now := w.o.Now()
		h := Header{
			Machine:  w.o.Machine,
			Disk:     w.o.Disk,
			DiskSize: w.o.DiskSize,
			Seq:      w.seq,
			Created:  now,
			FirstGen: gen,
		}
		var seg *SegmentWriter
		var err error
		if w.o.Memory {
			seg, err = w.createMemory(h)
		} else {
			seg, err = CreateSegment(filepath.Join(w.o.Dir, SegmentName(w.seq)), h)
		}
		if err != nil {
			return err
		}
		w.seg, w.born = seg, now
	}
	return w.seg.writeRecord(rec, crc, typ, gen, dataLen)
}

// rotate closes the open segment and reports it.
func (w *Writer) rotate() error {
	seg := w.seg
	w.seg = nil
	if err := seg.Close(); err != nil {
		w.err = fmt.Errorf("rotate: %w", err)
		return w.err
	}
	seq := w.seq
	if w.seq == math.MaxUint64 {
		w.spent = true
	} else {
		w.seq++
	}
	if mf, ok := seg.f.(*memSegment); ok {
		if w.o.OnSealed != nil {
			w.o.OnSealed(seq, mf.b)
		}
		mf.b = nil
	}
	if w.o.OnRotate != nil {
		w.o.OnRotate(seq, seg.Path())
	}
	return nil
}

// listSegments returns the sequence numbers of the segment files in dir,
// in ascending order.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents { // sorted by name, hence by sequence number
		if seq, ok := ParseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	return seqs, nil
}
