package store

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// The extent index of a journal segment, journal/%016x.idx next to
// journal/%016x.hrl, lists the segment's DATA and ZERO records: for each,
// the disk extent it writes and where the record lies in the segment. With
// it, Materialize finds which record holds the newest version of each byte
// without reading the segments, then reads only those records. All
// integers are little-endian:
//
//	 0  4  magic "LBXI"
//	 4  4  version, 1
//	 8  8  sequence number of the segment
//	16  8  size of the segment file in bytes
//	24  4  size of the segment's header record
//	28  4  n, the number of entries
//	32     n entries of 32 bytes, in the order of the records:
//	         0 8 disk offset of the extent
//	         8 8 length of the extent
//	        16 8 byte offset of the record in the segment
//	        24 4 size of the whole record
//	        28 1 record type, 'D' or 'Z'
//	        29 3 zero
//	32+32n 4  CRC-32C of everything before it
//
// Apply writes it crash-safely (temporary file, fsync, rename) after the
// segment's records are in current.img and before the applied marker
// moves, so every applied segment has one; an index that is missing (a
// store written before indexes existed) is rebuilt in memory by reading
// the whole segment. An index that fails its checks is an error.
const (
	indexExt        = ".idx"
	indexMagic      = "LBXI"
	indexVersion    = 1
	indexHeaderSize = 32
	indexEntrySize  = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// indexEntry is one DATA or ZERO record of a segment.
type indexEntry struct {
	Offset int64             // disk offset of the extent
	Length int64             // length of the extent
	Pos    int64             // offset of the record in the segment
	Size   int64             // size of the record
	Type   hrlfmt.RecordType // RecData or RecZero
}

// segIndex is the extent index of one segment.
type segIndex struct {
	Seq       uint64
	SegSize   int64 // size of the segment file
	HeaderLen int64 // size of its header record
	Entries   []indexEntry
}

// indexName returns the file name of the index of segment seq.
func indexName(seq uint64) string {
	return strings.TrimSuffix(hrlfmt.SegmentName(seq), ".hrl") + indexExt
}

func (x *segIndex) marshal() []byte {
	b := make([]byte, indexHeaderSize, indexHeaderSize+indexEntrySize*len(x.Entries)+4)
	copy(b, indexMagic)
	binary.LittleEndian.PutUint32(b[4:], indexVersion)
	binary.LittleEndian.PutUint64(b[8:], x.Seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(x.SegSize))
	binary.LittleEndian.PutUint32(b[24:], uint32(x.HeaderLen))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(x.Entries)))
	var e [indexEntrySize]byte
	for _, en := range x.Entries {
		binary.LittleEndian.PutUint64(e[0:], uint64(en.Offset))
		binary.LittleEndian.PutUint64(e[8:], uint64(en.Length))
		binary.LittleEndian.PutUint64(e[16:], uint64(en.Pos))
		binary.LittleEndian.PutUint32(e[24:], uint32(en.Size))
		e[28] = byte(en.Type)
		b = append(b, e[:]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// unmarshalIndex decodes and checks the index of segment seq.
func unmarshalIndex(b []byte, seq uint64) (segIndex, error) {
	if len(b) < indexHeaderSize+4 || string(b[:4]) != indexMagic {
		return segIndex{}, errors.New("not an extent index")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != indexVersion {
		return segIndex{}, fmt.Errorf("extent index of version %d, want %d", v, indexVersion)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return segIndex{}, errors.New("extent index checksum mismatch")
	}
	x := segIndex{
		Seq:       binary.LittleEndian.Uint64(b[8:]),
		SegSize:   int64(binary.LittleEndian.Uint64(b[16:])),
		HeaderLen: int64(binary.LittleEndian.Uint32(b[24:])),
	}
	n := int64(binary.LittleEndian.Uint32(b[28:]))
	if x.Seq != seq {
		return segIndex{}, fmt.Errorf("extent index of segment %d, want %d", x.Seq, seq)
	}
	if int64(len(body)) != indexHeaderSize+n*indexEntrySize {
		return segIndex{}, fmt.Errorf("extent index of %d bytes for %d entries", len(b), n)
	}
	if x.SegSize <= 0 || x.HeaderLen < hrlfmt.RecordHeaderSize || x.HeaderLen > x.SegSize {
		return segIndex{}, fmt.Errorf("extent index: segment of %d bytes, header of %d", x.SegSize, x.HeaderLen)
	}
	x.Entries = make([]indexEntry, n)
	end := x.HeaderLen
	for i := range x.Entries {
		e := body[indexHeaderSize+i*indexEntrySize:]
		en := indexEntry{
			Offset: int64(binary.LittleEndian.Uint64(e[0:])),
			Length: int64(binary.LittleEndian.Uint64(e[8:])),
			Pos:    int64(binary.LittleEndian.Uint64(e[16:])),
			Size:   int64(binary.LittleEndian.Uint32(e[24:])),
			Type:   hrlfmt.RecordType(e[28]),
		}
		switch {
		case en.Type != hrlfmt.RecData && en.Type != hrlfmt.RecZero, e[29]|e[30]|e[31] != 0:
			return segIndex{}, fmt.Errorf("extent index entry %d: bad type or reserved bytes", i)
		case en.Offset < 0 || en.Length <= 0 || en.Offset > 1<<63-1-en.Length:
			return segIndex{}, fmt.Errorf("extent index entry %d: bad extent [%d, +%d)", i, en.Offset, en.Length)
		case en.Pos < end || en.Size < hrlfmt.RecordHeaderSize || en.Pos > x.SegSize-en.Size:
			return segIndex{}, fmt.Errorf("extent index entry %d: record of %d bytes at %d out of place", i, en.Size, en.Pos)
		}
		end = en.Pos + en.Size
		x.Entries[i] = en
	}
	return x, nil
}

// writeIndex writes the index x into the journal directory jdir,
// crash-safely.
func writeIndex(jdir string, x *segIndex) error {
	if err := writeFileAtomic(jdir, indexName(x.Seq), x.marshal()); err != nil {
		return fmt.Errorf("extent index: %w", err)
	}
	return nil
}

// loadIndex returns the extent index of journal segment seq of
// machine's disk, from its index file, checked against the segment's size;
// where there is no index file, it reads the whole segment (checking all
// of it) to build one in memory, reading through ra(f).
func loadIndex(jdir, machine, disk string, seq uint64, ra func(*os.File) io.ReaderAt) (segIndex, error) {
	path := filepath.Join(jdir, hrlfmt.SegmentName(seq))
	fi, err := os.Stat(path)
	if err != nil {
		return segIndex{}, fmt.Errorf("journal: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(jdir, indexName(seq)))
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.Open(path)
		if err != nil {
			return segIndex{}, fmt.Errorf("journal: %w", err)
		}
		defer f.Close()
		return scanIndex(io.NewSectionReader(ra(f), 0, fi.Size()), path, machine, disk, seq)
	}
	if err != nil {
		return segIndex{}, fmt.Errorf("read extent index: %w", err)
	}
	x, err := unmarshalIndex(b, seq)
	if err == nil && x.SegSize != fi.Size() {
		err = fmt.Errorf("extent index for a segment of %d bytes, the segment has %d", x.SegSize, fi.Size())
	}
	if err != nil {
		return segIndex{}, fmt.Errorf("%s: %w (remove it to rebuild it from the segment)", filepath.Join(jdir, indexName(seq)), err)
	}
	return x, nil
}

// scanIndex reads a whole segment, checking everything, and returns its
// extent index.
func scanIndex(rd io.Reader, path, machine, disk string, seq uint64) (segIndex, error) {
	r, err := hrlfmt.NewReader(rd)
	if err != nil {
		return segIndex{}, fmt.Errorf("journal segment %s: %w", path, err)
	}
	if err := checkHeader(r.Header(), machine, disk, seq); err != nil {
		return segIndex{}, fmt.Errorf("journal segment %s: %w", path, err)
	}
	x := segIndex{Seq: seq, HeaderLen: r.Offset()}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return segIndex{}, fmt.Errorf("journal segment %s: %w", path, err)
		}
		x.add(rec, r.Offset())
	}
	x.SegSize = r.Offset()
	return x, nil
}

// add adds rec to the index if it is a DATA or ZERO record; end is the
// offset just after it in the segment.
func (x *segIndex) add(rec hrlfmt.Record, end int64) {
	if rec.Type == hrlfmt.RecData || rec.Type == hrlfmt.RecZero {
		x.Entries = append(x.Entries, indexEntry{Offset: rec.Offset, Length: rec.Length, Pos: rec.Pos, Size: end - rec.Pos, Type: rec.Type})
	}
}

// span is the byte range [lo, hi) of a disk.
type span struct{ lo, hi int64 }

// newestPieces returns, for each extent of exts (in journal order, oldest
// first), the parts of it that no later extent covers: the bytes for which
// it holds the newest version. Each byte covered by any extent is in
// exactly one piece; pieces of one extent are in ascending order. It sweeps
// the extents' ends in order keeping the covering extents in a max-heap by
// journal order, so it takes O(n log n) for n extents.
func newestPieces(exts []indexEntry) [][]span {
	type event struct {
		x     int64
		i     int
		start bool
	}
	events := make([]event, 0, 2*len(exts))
	for i, e := range exts {
		events = append(events, event{e.Offset, i, true}, event{e.Offset + e.Length, i, false})
	}
	slices.SortFunc(events, func(a, b event) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	pieces := make([][]span, len(exts))
	ended := make([]bool, len(exts))
	var h maxHeap
	for k := 0; k < len(events); {
		x := events[k].x
		for ; k < len(events) && events[k].x == x; k++ {
			if events[k].start {
				heap.Push(&h, events[k].i)
			} else {
				ended[events[k].i] = true
			}
		}
		for len(h) > 0 && ended[h[0]] {
			heap.Pop(&h)
		}
		if len(h) == 0 || k == len(events) {
			continue
		}
		top, next := h[0], events[k].x
		if ps := pieces[top]; len(ps) > 0 && ps[len(ps)-1].hi == x {
			ps[len(ps)-1].hi = next
		} else {
			pieces[top] = append(ps, span{x, next})
		}
	}
	return pieces
}

// maxHeap is a max-heap of extent numbers: the newest on top.
type maxHeap []int

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// spanBytes returns the bytes that disjoint spans cover.
func spanBytes(s []span) int64 {
	var n int64
	for _, p := range s {
		n += p.hi - p.lo
	}
	return n
}

// mergeSpans sorts s and merges the spans that overlap or touch; it may
// reorder s in place.
func mergeSpans(s []span) []span {
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var out []span
	for _, p := range s {
		if p.hi <= p.lo {
			continue
		}
		if n := len(out); n > 0 && p.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, p.hi)
			continue
		}
		out = append(out, p)
	}
	return out
}

// intersectSpans returns the bytes in both a and b, two lists of disjoint
// spans in order, as such a list.
func intersectSpans(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
		if lo < hi {
			out = append(out, span{lo, hi})
		}
		if a[i].hi < b[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// subtractSpans returns the bytes of a not in b, two lists of disjoint
// spans in order, as such a list.
func subtractSpans(a, b []span) []span {
	var out []span
	j := 0
	for _, p := range a {
		lo := p.lo
		for j < len(b) && b[j].hi <= lo {
			j++
		}
		for k := j; k < len(b) && b[k].lo < p.hi; k++ {
			if b[k].lo > lo {
				out = append(out, span{lo, b[k].lo})
			}
			lo = max(lo, b[k].hi)
		}
		if lo < p.hi {
			out = append(out, span{lo, p.hi})
		}
	}
	return out
}
