package hrlfmt

import (
	"fmt"
	"io"
	"time"
)

// memSegment is a segment built in memory (WriterOptions.Memory): the agent
// without a spool streams its segments to the process server from
// memory, so its host writes no journal bytes. Sync and Close have nothing
// to make durable; durability is the server's acknowledgement.
type memSegment struct {
	b []byte
}

func (m *memSegment) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		return 0, fmt.Errorf("memory segment: write at %d past its end %d", off, len(m.b))
	}
	end := int(off) + len(p)
	if end > cap(m.b) {
		nb := make([]byte, len(m.b), max(end, 2*cap(m.b)))
		copy(nb, m.b)
		m.b = nb
	}
	if end > len(m.b) {
		m.b = m.b[:end]
	}
	copy(m.b[off:], p)
	return len(p), nil
}

func (m *memSegment) Truncate(size int64) error {
	if size < 0 || size > int64(len(m.b)) {
		return io.ErrShortWrite
	}
	m.b = m.b[:size]
	return nil
}

func (m *memSegment) Sync() error  { return nil }
func (m *memSegment) Close() error { return nil }

// newMemoryWriter checks the options of a Writer of memory segments.
func newMemoryWriter(o WriterOptions) (*Writer, error) {
	h := Header{Version: Version, Machine: o.Machine, Disk: o.Disk, DiskSize: o.DiskSize, Created: time.Unix(0, 1)}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("new writer: %w", err)
	}
	if o.MaxSegmentBytes < 0 || o.MaxSegmentAge < 0 {
		return nil, fmt.Errorf("new writer: negative segment size %d or age %v", o.MaxSegmentBytes, o.MaxSegmentAge)
	}
	if o.MaxSegmentBytes == 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxSegmentAge == 0 {
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Writer{o: o, seq: o.FirstSeq}, nil
}

// createMemory starts a segment in memory.
func (w *Writer) createMemory(h Header) (*SegmentWriter, error) {
	h.Version = Version
	h.Minor = MinorVersion
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	var buf []byte
	if w.o.Buffer != nil {
		buf = w.o.Buffer()[:0]
	}
	return startSegment(&memSegment{b: buf}, "memory:"+SegmentName(h.Seq), "", h)
}
