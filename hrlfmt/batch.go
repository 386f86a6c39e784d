package hrlfmt

import "fmt"

// Batch holds DATA and ZERO records encoded ahead of a Writer, so that the
// costly part of journaling (lz4 compression, checksums) can run in
// several goroutines at once while one Writer appends the batches in the
// order the caller chooses (WriteBatch). A Batch is not safe for
// concurrent use: give each goroutine its own, and Reset it for reuse.
type Batch struct {
	diskSize int64
	enc      encoder
	buf      []byte // the encoded records, back to back
	recs     []batchRec
	data     int64 // uncompressed bytes of the DATA records
}

type batchRec struct {
	end     int // end of the record in buf
	crc     uint32
	typ     RecordType
	gen     uint64
	dataLen int64
}

// NewBatch returns an empty Batch for a disk of diskSize bytes (the
// Writer's DiskSize: extents are checked against it).
func NewBatch(diskSize int64) *Batch { return &Batch{diskSize: diskSize} }

// Reset empties the Batch, keeping its memory.
func (b *Batch) Reset() {
	b.buf, b.recs, b.data = b.buf[:0], b.recs[:0], 0
}

// Free empties the Batch and lets go of its buffer, for a Batch that
// grew large and will mostly hold small records from now on.
func (b *Batch) Free() {
	b.Reset()
	b.buf, b.enc.buf = nil, nil
}

// Grow makes room for n more bytes of records, so that encoding them
// allocates nothing (a DATA record takes its data's length plus 44 bytes at
// most, a ZERO record 48).
func (b *Batch) Grow(n int) {
	if cap(b.buf)-len(b.buf) < n {
		nb := make([]byte, len(b.buf), len(b.buf)+n)
		copy(nb, b.buf)
		b.buf = nb
	}
}

// Retained returns the bytes of buffer the Batch holds on to.
func (b *Batch) Retained() int { return cap(b.buf) }

// Len returns the number of records in the Batch.
func (b *Batch) Len() int { return len(b.recs) }

// DataBytes returns the uncompressed bytes of its DATA records.
func (b *Batch) DataBytes() int64 { return b.data }

// Data adds a DATA record, encoded as Writer.WriteData would write it
// (lz4-compressed when that pays, raw otherwise). The Batch does not keep
// data.
func (b *Batch) Data(off int64, gen uint64, data []byte) error {
	if err := checkData(off, data, b.diskSize); err != nil {
		return err
	}
	b.room(RecordHeaderSize + dataFixedSize + len(data))
	rec, crc := b.enc.data(off, gen, data)
	b.add(rec, crc, RecData, gen, int64(len(data)))
	b.data += int64(len(data))
	return nil
}

// Zero adds a ZERO record.
func (b *Batch) Zero(off, n int64, gen uint64, reason ZeroReason) error {
	if err := checkZero(off, n, reason, b.diskSize); err != nil {
		return err
	}
	b.room(RecordHeaderSize + zeroPayloadSize)
	rec, crc := b.enc.zero(off, n, gen, reason)
	b.add(rec, crc, RecZero, gen, 0)
	return nil
}

// room makes the encoder encode the next record of at most n bytes in
// place, at the end of buf.
func (b *Batch) room(n int) {
	if cap(b.buf)-len(b.buf) < n {
		b.buf = append(b.buf[:cap(b.buf)], make([]byte, n+len(b.buf))...)[:len(b.buf)]
	}
	b.enc.buf = b.buf[len(b.buf):cap(b.buf)]
}

// add takes the record the encoder has just encoded at the end of buf.
func (b *Batch) add(rec []byte, crc uint32, typ RecordType, gen uint64, dataLen int64) {
	b.buf = b.buf[:len(b.buf)+len(rec)]
	b.recs = append(b.recs, batchRec{end: len(b.buf), crc: crc, typ: typ, gen: gen, dataLen: dataLen})
}

// WriteBatch appends the records of b in order, each with one write as
// WriteData and WriteZero do, rotating segments between records as needed.
// On an error, the records before the failing one are written and the
// rest are not; writing the whole batch again is harmless to a reader,
// which applies records in order (a later record wins).
func (w *Writer) WriteBatch(b *Batch) error {
	if b.diskSize != w.o.DiskSize {
		return fmt.Errorf("write batch: encoded for a disk of %d bytes, the journal's has %d", b.diskSize, w.o.DiskSize)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	start := 0
	for _, r := range b.recs {
		if err := w.write(b.buf[start:r.end], r.crc, r.typ, r.gen, r.dataLen); err != nil {
			return err
		}
		start = r.end
	}
	return nil
}
