package hrlfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the major format version this package writes and reads.
// Readers reject every other major version with ErrVersion.
const Version = 1

// MinorVersion is the minor format version this package writes. A reader
// accepts any minor version of its major version: minor versions only add
// skippable record types and header fields appended after the known ones.
const MinorVersion = 1

// Limits of the format. A reader checks every length it reads against them
// before it allocates or reads anything of that length.
const (
	// RecordHeaderSize is the size of the fixed header of every record.
	RecordHeaderSize = 20
	// MaxDataLength is the largest uncompressed length of one DATA record.
	MaxDataLength = 8 << 20
	// MaxPayload is the largest payload of any record: a DATA record of
	// MaxDataLength bytes, lz4-compressed at worst, fits with room to spare.
	MaxPayload = MaxDataLength + 64<<10
	// MaxNameLength is the largest length in bytes of a machine or disk name.
	MaxNameLength = 255
	// MaxPointIDLength is the largest length in bytes of a cut's point id.
	MaxPointIDLength = 64
)

// FlagSkippable in a record's flags byte tells a reader that does not know
// the record's type that it may skip the record. A reader rejects an unknown
// record type without it.
const FlagSkippable = 0x80

// recordMagic opens every record: the bytes "LBHR".
const recordMagic = "LBHR"

// Sizes of the fixed parts of the payloads.
const (
	headerFixedSize = 38 // without the two names
	dataFixedSize   = 24 // without the stored bytes
	zeroPayloadSize = 28
	cutFixedSize    = 20 // without the point id
	noteFixedSize   = 12 // without the point id and the text
	// MaxNoteLength bounds the text of a NOTE record.
	MaxNoteLength = 4096
	trailerSize   = 36
	// trailerRecordSize is the size of a whole trailer record.
	trailerRecordSize = RecordHeaderSize + trailerSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordType is the type byte of a record.
type RecordType uint8

// Record types. They are ASCII letters so that a hex dump is readable.
const (
	// RecHeader opens every segment; Reader.Header returns it.
	RecHeader RecordType = 'H'
	// RecData is an extent of disk data, stored raw or lz4-compressed.
	RecData RecordType = 'D'
	// RecZero is an extent that reads as zeros: zeroed or discarded.
	RecZero RecordType = 'Z'
	// RecCut marks a recovery point (a cut) of the disk.
	RecCut RecordType = 'C'
	// RecTrailer closes a complete segment; Reader.Next checks it and then
	// returns io.EOF.
	RecTrailer RecordType = 'T'
	// RecNote describes a recovery point (an app-consistent point's freeze
	// time, scripts and filesystems). It precedes the point's CUT and is
	// written with FlagSkippable: readers of version 1.0 skip it.
	RecNote RecordType = 'P'
)

// String returns the name of the record type.
func (t RecordType) String() string {
	switch t {
	case RecHeader:
		return "header"
	case RecData:
		return "data"
	case RecZero:
		return "zero"
	case RecCut:
		return "cut"
	case RecNote:
		return "note"
	case RecTrailer:
		return "trailer"
	}
	return fmt.Sprintf("type 0x%02x", uint8(t))
}

// Compression is how a DATA record stores its bytes.
type Compression uint8

// Compressions of DATA records.
const (
	// CompressNone stores the bytes as they are.
	CompressNone Compression = 0
	// CompressLZ4 stores one lz4 block (block format, no frame).
	CompressLZ4 Compression = 1
)

// String returns the name of the compression.
func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressLZ4:
		return "lz4-block"
	}
	return fmt.Sprintf("compression %d", uint8(c))
}

// ZeroReason says why an extent reads as zeros.
type ZeroReason uint8

// Reasons of ZERO records.
const (
	// ZeroZeroed: the extent was written with zeros (write-zeroes).
	ZeroZeroed ZeroReason = 1
	// ZeroDiscarded: the extent was discarded (trim, discard, secure erase).
	ZeroDiscarded ZeroReason = 2
)

// String returns the name of the reason.
func (r ZeroReason) String() string {
	switch r {
	case ZeroZeroed:
		return "zeroed"
	case ZeroDiscarded:
		return "discarded"
	}
	return fmt.Sprintf("reason %d", uint8(r))
}

// CutKind is the kind of recovery point a cut marks.
type CutKind uint8

// Kinds of cuts.
const (
	// CutCrash is a crash-consistent point.
	CutCrash CutKind = 1
	// CutApp is an app-consistent point (filesystems frozen, scripts run).
	CutApp CutKind = 2
	// CutGroup is a multi-machine consistent point of a replication group.
	CutGroup CutKind = 3
)

// String returns the name of the kind.
func (k CutKind) String() string {
	switch k {
	case CutCrash:
		return "crash"
	case CutApp:
		return "app"
	case CutGroup:
		return "group"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Header describes a segment. It is the payload of the segment's first
// record.
type Header struct {
	// Version is the major format version; CreateSegment writes Version
	// when it is 0.
	Version uint16
	// Minor is the minor format version; informational for readers.
	Minor uint16
	// Machine is the name of the protected machine.
	Machine string
	// Disk is the name of the protected disk on that machine.
	Disk string
	// DiskSize is the size of the disk in bytes; every extent lies in it.
	DiskSize int64
	// Seq is the sequence number of the segment in the disk's journal.
	Seq uint64
	// Created is when the segment was created (nanosecond precision, UTC
	// when read back).
	Created time.Time
	// FirstGen is the generation of the segment's first record, or 0 when
	// unknown.
	FirstGen uint64
}

// Validate reports whether h can be written to, or was read from, a
// segment of this format version.
func (h Header) Validate() error {
	if h.Version != Version {
		return fmt.Errorf("version %d: %w", h.Version, ErrVersion)
	}
	if err := validName(h.Machine); err != nil {
		return fmt.Errorf("machine name: %w", err)
	}
	if err := validName(h.Disk); err != nil {
		return fmt.Errorf("disk name: %w", err)
	}
	if h.DiskSize <= 0 {
		return fmt.Errorf("disk size %d: not positive", h.DiskSize)
	}
	if err := validTime(h.Created); err != nil {
		return fmt.Errorf("creation time: %w", err)
	}
	return nil
}

// validName checks a machine or disk name: 1 to MaxNameLength bytes of
// UTF-8 without control characters.
func validName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxNameLength {
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxNameLength)
	}
	return validText(s)
}

// validText checks that s is UTF-8 without control characters.
func validText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// validTime checks that t is set and can be written as int64 nanoseconds
// since the Unix epoch (years 1678 to 2262).
func validTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("not set")
	}
	if !time.Unix(0, t.UnixNano()).Equal(t) {
		return fmt.Errorf("%v: out of range", t)
	}
	return nil
}

// Cut marks a recovery point in a segment: every change of generation Gen
// and earlier precedes it in the journal.
type Cut struct {
	// Kind is the kind of point.
	Kind CutKind
	// Gen is the generation the cut closes.
	Gen uint64
	// Time is the instant of the cut.
	Time time.Time
	// PointID names the recovery point: 1 to MaxPointIDLength bytes of
	// UTF-8 without control characters (a UUID in text form fits).
	PointID string
}

// Validate reports whether c can be written.
func (c Cut) Validate() error {
	switch c.Kind {
	case CutCrash, CutApp, CutGroup:
	default:
		return fmt.Errorf("cut: unknown %v", c.Kind)
	}
	if err := validTime(c.Time); err != nil {
		return fmt.Errorf("cut time: %w", err)
	}
	if c.PointID == "" {
		return errors.New("cut: empty point id")
	}
	if len(c.PointID) > MaxPointIDLength {
		return fmt.Errorf("cut: point id of %d bytes, more than %d", len(c.PointID), MaxPointIDLength)
	}
	if err := validText(c.PointID); err != nil {
		return fmt.Errorf("cut: point id: %w", err)
	}
	return nil
}

// Record is one record of a segment, as Reader.Next returns it.
type Record struct {
	// Type is RecData, RecZero or RecCut.
	Type RecordType
	// Pos is the byte offset of the record in the segment.
	Pos int64
	// Size is the size in bytes of the whole record in the segment.
	Size int64
	// Offset is the disk byte offset of a DATA or ZERO extent.
	Offset int64
	// Length is the length in bytes of a DATA or ZERO extent (for DATA,
	// uncompressed: len(Data)).
	Length int64
	// Gen is the generation of the extent or cut.
	Gen uint64
	// Data holds the uncompressed bytes of a DATA record. It belongs to
	// the caller.
	Data []byte
	// Compression is how a DATA record was stored (informational).
	Compression Compression
	// Reason says why a ZERO extent reads as zeros.
	Reason ZeroReason
	// Cut is the cut of a CUT record.
	Cut *Cut
	// Note is the note of a NOTE record.
	Note *Note
}

// Note describes a recovery point; it precedes the point's CUT.
type Note struct {
	// PointID is the point the note is about.
	PointID string
	// Freeze is how long the filesystems were frozen for the cut (0 for a
	// point without a freeze).
	Freeze time.Duration
	// Text is free UTF-8 text, by convention a JSON object (scripts run and
	// their exit status, filesystems frozen), at most MaxNoteLength bytes.
	Text string
}

// Validate reports whether n can be written.
func (n Note) Validate() error {
	if err := (Cut{Kind: CutApp, Time: time.Unix(0, 0), PointID: n.PointID}).Validate(); err != nil {
		return fmt.Errorf("note: %w", err)
	}
	if n.Freeze < 0 {
		return fmt.Errorf("note: negative freeze time %s", n.Freeze)
	}
	if len(n.Text) > MaxNoteLength {
		return fmt.Errorf("note: text of %d bytes, at most %d", len(n.Text), MaxNoteLength)
	}
	if !utf8.ValidString(n.Text) {
		return errors.New("note: text is not UTF-8")
	}
	return nil
}

func notePayload(p []byte, n Note) {
	binary.LittleEndian.PutUint64(p[0:], uint64(n.Freeze))
	p[8] = byte(len(n.PointID))
	p[9], p[10], p[11] = 0, 0, 0
	copy(p[noteFixedSize:], n.PointID)
	copy(p[noteFixedSize+len(n.PointID):], n.Text)
}

// checkExtent checks that [off, off+n) is a non-empty extent of a disk of
// diskSize bytes.
func checkExtent(off, n, diskSize int64) error {
	if off < 0 {
		return fmt.Errorf("negative offset %d", off)
	}
	if n <= 0 {
		return fmt.Errorf("extent at %d: length %d not positive", off, n)
	}
	if n > diskSize || off > diskSize-n {
		return fmt.Errorf("extent [%d, +%d) beyond disk size %d", off, n, diskSize)
	}
	return nil
}

// trailer is the payload of a trailer record, and also the running state a
// writer and a reader keep to produce or check it.
type trailer struct {
	records   uint64 // records between header and trailer
	dataBytes uint64 // sum of the uncompressed lengths of DATA records
	lastGen   uint64 // highest generation of DATA, ZERO and CUT records
	offset    uint64 // offset of the trailer: bytes before it
	chain     uint32 // CRC-32C of the little-endian CRCs of all records before it
}

// add accounts for a record of n bytes (header included) with checksum crc.
// The header record is added too, without counting in records.
func (t *trailer) add(typ RecordType, n int, crc uint32, gen uint64, dataLen int64) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc)
	t.chain = crc32.Update(t.chain, castagnoli, b[:])
	t.offset += uint64(n)
	switch typ {
	case RecHeader:
		return
	case RecData:
		t.dataBytes += uint64(dataLen)
		fallthrough
	case RecZero, RecCut:
		t.lastGen = max(t.lastGen, gen)
	}
	t.records++
}

func (t trailer) marshal(p []byte) {
	_ = p[trailerSize-1]
	binary.LittleEndian.PutUint64(p[0:], t.records)
	binary.LittleEndian.PutUint64(p[8:], t.dataBytes)
	binary.LittleEndian.PutUint64(p[16:], t.lastGen)
	binary.LittleEndian.PutUint64(p[24:], t.offset)
	binary.LittleEndian.PutUint32(p[32:], t.chain)
}

func unmarshalTrailer(p []byte) trailer {
	return trailer{
		records:   binary.LittleEndian.Uint64(p[0:]),
		dataBytes: binary.LittleEndian.Uint64(p[8:]),
		lastGen:   binary.LittleEndian.Uint64(p[16:]),
		offset:    binary.LittleEndian.Uint64(p[24:]),
		chain:     binary.LittleEndian.Uint32(p[32:]),
	}
}

// sealRecord fills in the record header in rec[:RecordHeaderSize] for the
// payload in rec[RecordHeaderSize:], and returns the record's checksum.
func sealRecord(rec []byte, typ RecordType, flags uint8) uint32 {
	h := rec[:RecordHeaderSize]
	copy(h[0:4], recordMagic)
	h[4] = byte(typ)
	h[5] = flags
	h[6], h[7] = 0, 0
	binary.LittleEndian.PutUint32(h[8:], uint32(len(rec)-RecordHeaderSize))
	hcrc := crc32.Checksum(h[:12], castagnoli)
	crc := crc32.Update(hcrc, castagnoli, rec[RecordHeaderSize:])
	binary.LittleEndian.PutUint32(h[12:], hcrc)
	binary.LittleEndian.PutUint32(h[16:], crc)
	return crc
}

// appendHeaderRecord appends the header record of h to dst.
func appendHeaderRecord(dst []byte, h Header) ([]byte, uint32) {
	start := len(dst)
	var p [headerFixedSize - 2]byte // the fixed fields before the names
	binary.LittleEndian.PutUint16(p[0:], h.Version)
	binary.LittleEndian.PutUint16(p[2:], h.Minor)
	binary.LittleEndian.PutUint64(p[4:], h.Seq)
	binary.LittleEndian.PutUint64(p[12:], uint64(h.DiskSize))
	binary.LittleEndian.PutUint64(p[20:], uint64(h.Created.UnixNano()))
	binary.LittleEndian.PutUint64(p[28:], h.FirstGen)
	dst = append(dst, make([]byte, RecordHeaderSize)...)
	dst = append(dst, p[:]...)
	dst = append(dst, byte(len(h.Machine)))
	dst = append(dst, h.Machine...)
	dst = append(dst, byte(len(h.Disk)))
	dst = append(dst, h.Disk...)
	return dst, sealRecord(dst[start:], RecHeader, 0)
}

// parseHeader decodes a header payload whose record checksum has passed.
func parseHeader(p []byte) (Header, error) {
	if len(p) < 4 {
		return Header{}, fmt.Errorf("%w: header payload of %d bytes", ErrCorrupt, len(p))
	}
	h := Header{
		Version: binary.LittleEndian.Uint16(p[0:]),
		Minor:   binary.LittleEndian.Uint16(p[2:]),
	}
	if h.Version != Version {
		return Header{}, fmt.Errorf("%w: format version %d.%d, this reader knows %d", ErrVersion, h.Version, h.Minor, Version)
	}
	if len(p) < headerFixedSize {
		return Header{}, fmt.Errorf("%w: header payload of %d bytes, want at least %d", ErrCorrupt, len(p), headerFixedSize)
	}
	h.Seq = binary.LittleEndian.Uint64(p[4:])
	size := binary.LittleEndian.Uint64(p[12:])
	if size > math.MaxInt64 {
		return Header{}, fmt.Errorf("%w: disk size %d out of range", ErrCorrupt, size)
	}
	h.DiskSize = int64(size)
	h.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(p[20:]))).UTC()
	h.FirstGen = binary.LittleEndian.Uint64(p[28:])
	rest := p[36:]
	var names [2]string
	for i := range names {
		if len(rest) < 1 || len(rest)-1 < int(rest[0]) {
			return Header{}, fmt.Errorf("%w: header names run past the payload", ErrCorrupt)
		}
		n := int(rest[0])
		names[i] = string(rest[1 : 1+n])
		rest = rest[1+n:]
	}
	// Bytes after the names belong to later minor versions: ignored.
	h.Machine, h.Disk = names[0], names[1]
	if err := h.Validate(); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	return h, nil
}

// zeroPayload encodes a ZERO record's payload.
func zeroPayload(p []byte, off, n int64, gen uint64, reason ZeroReason) {
	_ = p[zeroPayloadSize-1]
	binary.LittleEndian.PutUint64(p[0:], uint64(off))
	binary.LittleEndian.PutUint64(p[8:], uint64(n))
	binary.LittleEndian.PutUint64(p[16:], gen)
	p[24] = byte(reason)
	p[25], p[26], p[27] = 0, 0, 0
}

// cutPayload encodes a CUT record's payload into p, which has room for it.
func cutPayload(p []byte, c Cut) {
	binary.LittleEndian.PutUint64(p[0:], c.Gen)
	binary.LittleEndian.PutUint64(p[8:], uint64(c.Time.UnixNano()))
	p[16] = byte(c.Kind)
	p[17] = byte(len(c.PointID))
	p[18], p[19] = 0, 0
	copy(p[cutFixedSize:], c.PointID)
}
