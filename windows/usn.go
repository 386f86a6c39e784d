package windows

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// USN reasons (winioctl.h, USN_REASON_*), the ones the tracker acts on.
const (
	ReasonDataOverwrite       uint32 = 0x00000001
	ReasonDataExtend          uint32 = 0x00000002
	ReasonDataTruncation      uint32 = 0x00000004
	ReasonNamedDataOverwrite  uint32 = 0x00000010
	ReasonNamedDataExtend     uint32 = 0x00000020
	ReasonNamedDataTruncation uint32 = 0x00000040
	ReasonFileCreate          uint32 = 0x00000100
	ReasonFileDelete          uint32 = 0x00000200
	ReasonRenameOldName       uint32 = 0x00001000
	ReasonRenameNewName       uint32 = 0x00002000
	ReasonHardLinkChange      uint32 = 0x00010000
	ReasonStreamChange        uint32 = 0x00200000
	ReasonClose               uint32 = 0x80000000

	// reasonData: the file's data (default or named stream) changed.
	reasonData = ReasonDataOverwrite | ReasonDataExtend | ReasonDataTruncation |
		ReasonNamedDataOverwrite | ReasonNamedDataExtend | ReasonNamedDataTruncation | ReasonStreamChange
)

// FileRef is a file's id: the 64-bit file reference number of a V2
// record in Lo (Hi zero), or the 128-bit FILE_ID_128 of V3/V4 records.
// On NTFS the 128-bit id is the 64-bit reference zero-extended, so both
// name the same file.
type FileRef struct{ Lo, Hi uint64 }

func (f FileRef) String() string {
	if f.Hi == 0 {
		return fmt.Sprintf("%#x", f.Lo)
	}
	return fmt.Sprintf("%#x%016x", f.Hi, f.Lo)
}

// Record is one USN record of any version.
type Record struct {
	Major, Minor uint16
	File, Parent FileRef
	USN          int64
	Reason       uint32
	SourceInfo   uint32
	Attributes   uint32 // V2/V3 only
	Name         string // V2/V3 only
	// Ranges are the byte ranges of the file the writes changed (V4,
	// range tracking); RemainingExtents says how many more follow in
	// later records of the same change.
	Ranges           []FileRange
	RemainingExtents uint32
}

// FileRange is a byte range of a file (USN_RECORD_EXTENT).
type FileRange struct{ Off, Len int64 }

// Sizes of the fixed parts of the records (winioctl.h).
const (
	usnHeaderSize = 8  // USN_RECORD_COMMON_HEADER
	usnV2Fixed    = 60 // USN_RECORD_V2 up to FileName
	usnV3Fixed    = 76 // USN_RECORD_V3 up to FileName
	usnV4Fixed    = 64 // USN_RECORD_V4 up to Extents
	usnExtentSize = 16 // USN_RECORD_EXTENT
	// maxRecord bounds a record's length: a file name is at most 255
	// UTF-16 units, and a V4 record holds a few extents.
	maxRecord = 64 << 10
)

// ErrBadRecord is wrapped by every error of a malformed USN record.
var ErrBadRecord = errors.New("malformed USN record")

// ParseRecord parses one record at the start of b and returns it with its
// length (RecordLength, the distance to the next record). It checks every
// length against b before using it.
func ParseRecord(b []byte) (Record, int, error) {
	var r Record
	if len(b) < usnHeaderSize {
		return r, 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrBadRecord, len(b), usnHeaderSize)
	}
	le := binary.LittleEndian
	n := int(le.Uint32(b))
	r.Major, r.Minor = le.Uint16(b[4:]), le.Uint16(b[6:])
	if n < usnHeaderSize || n > len(b) || n > maxRecord || n%8 != 0 {
		return r, 0, fmt.Errorf("%w: record length %d (have %d bytes)", ErrBadRecord, n, len(b))
	}
	b = b[:n]
	switch r.Major {
	case 2:
		if n < usnV2Fixed {
			return r, 0, fmt.Errorf("%w: V2 record of %d bytes", ErrBadRecord, n)
		}
		r.File = FileRef{Lo: le.Uint64(b[8:])}
		r.Parent = FileRef{Lo: le.Uint64(b[16:])}
		r.USN = int64(le.Uint64(b[24:]))
		r.Reason = le.Uint32(b[40:])
		r.SourceInfo = le.Uint32(b[44:])
		r.Attributes = le.Uint32(b[52:])
		name, err := recordName(b, le.Uint16(b[56:]), le.Uint16(b[58:]), usnV2Fixed)
		if err != nil {
			return r, 0, err
		}
		r.Name = name
	case 3:
		if n < usnV3Fixed {
			return r, 0, fmt.Errorf("%w: V3 record of %d bytes", ErrBadRecord, n)
		}
		r.File = FileRef{Lo: le.Uint64(b[8:]), Hi: le.Uint64(b[16:])}
		r.Parent = FileRef{Lo: le.Uint64(b[24:]), Hi: le.Uint64(b[32:])}
		r.USN = int64(le.Uint64(b[40:]))
		r.Reason = le.Uint32(b[56:])
		r.SourceInfo = le.Uint32(b[60:])
		r.Attributes = le.Uint32(b[68:])
		name, err := recordName(b, le.Uint16(b[72:]), le.Uint16(b[74:]), usnV3Fixed)
		if err != nil {
			return r, 0, err
		}
		r.Name = name
	case 4:
		if n < usnV4Fixed {
			return r, 0, fmt.Errorf("%w: V4 record of %d bytes", ErrBadRecord, n)
		}
		r.File = FileRef{Lo: le.Uint64(b[8:]), Hi: le.Uint64(b[16:])}
		r.Parent = FileRef{Lo: le.Uint64(b[24:]), Hi: le.Uint64(b[32:])}
		r.USN = int64(le.Uint64(b[40:]))
		r.Reason = le.Uint32(b[48:])
		r.SourceInfo = le.Uint32(b[52:])
		r.RemainingExtents = le.Uint32(b[56:])
		count, size := int(le.Uint16(b[60:])), int(le.Uint16(b[62:]))
		if count > 0 && size < usnExtentSize {
			return r, 0, fmt.Errorf("%w: V4 extent size %d", ErrBadRecord, size)
		}
		if count*size > n-usnV4Fixed {
			return r, 0, fmt.Errorf("%w: %d extents of %d bytes in a V4 record of %d bytes", ErrBadRecord, count, size, n)
		}
		for i := range count {
			e := b[usnV4Fixed+i*size:]
			off, l := int64(le.Uint64(e)), int64(le.Uint64(e[8:]))
			if off < 0 || l < 0 || l > 1<<62-off {
				return r, 0, fmt.Errorf("%w: V4 extent %d..+%d", ErrBadRecord, off, l)
			}
			r.Ranges = append(r.Ranges, FileRange{Off: off, Len: l})
		}
	default:
		return r, 0, fmt.Errorf("%w: version %d.%d", ErrBadRecord, r.Major, r.Minor)
	}
	return r, n, nil
}

// recordName decodes the UTF-16 file name of a V2/V3 record.
func recordName(b []byte, length, offset uint16, fixed int) (string, error) {
	if length%2 != 0 || int(offset) < fixed || int(offset)+int(length) > len(b) {
		return "", fmt.Errorf("%w: name at %d, %d bytes, in a record of %d", ErrBadRecord, offset, length, len(b))
	}
	u := make([]uint16, length/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[int(offset)+2*i:])
	}
	return string(utf16.Decode(u)), nil
}

// ParseJournalRead parses the output of FSCTL_READ_USN_JOURNAL: the USN
// to read from next, then whole records.
func ParseJournalRead(b []byte) (next int64, recs []Record, err error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: journal read of %d bytes", ErrBadRecord, len(b))
	}
	next = int64(binary.LittleEndian.Uint64(b))
	for off := 8; off < len(b); {
		r, n, err := ParseRecord(b[off:])
		if err != nil {
			return next, recs, fmt.Errorf("at byte %d: %w", off, err)
		}
		recs = append(recs, r)
		off += n
	}
	return next, recs, nil
}

// JournalInfo is what FSCTL_QUERY_USN_JOURNAL tells (USN_JOURNAL_DATA_V2).
type JournalInfo struct {
	ID             uint64
	FirstUSN       int64
	NextUSN        int64
	LowestValidUSN int64
	MaxUSN         int64
	MaxMajor       uint16 // highest record version the journal writes
	RangeTracking  bool   // FLAG_USN_TRACK_MODIFIED_RANGES_ENABLE
	RangeChunk     uint64
	RangeThreshold int64
}

// ParseJournalData parses USN_JOURNAL_DATA_V0, V1 or V2 by its length.
func ParseJournalData(b []byte) (JournalInfo, error) {
	var j JournalInfo
	if len(b) < 56 {
		return j, fmt.Errorf("%w: USN_JOURNAL_DATA of %d bytes", ErrBadRecord, len(b))
	}
	le := binary.LittleEndian
	j.ID = le.Uint64(b)
	j.FirstUSN = int64(le.Uint64(b[8:]))
	j.NextUSN = int64(le.Uint64(b[16:]))
	j.LowestValidUSN = int64(le.Uint64(b[24:]))
	j.MaxUSN = int64(le.Uint64(b[32:]))
	j.MaxMajor = 2
	if len(b) >= 60 {
		j.MaxMajor = le.Uint16(b[58:])
	}
	if len(b) >= 80 {
		j.RangeTracking = le.Uint32(b[60:])&1 != 0
		j.RangeChunk = le.Uint64(b[64:])
		j.RangeThreshold = int64(le.Uint64(b[72:]))
	}
	return j, nil
}
