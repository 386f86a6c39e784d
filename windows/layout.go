package windows

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// Run is a run of a file's clusters: virtual clusters [VCN, VCN+Len) of
// the file are the volume's clusters [LCN, LCN+Len); LCN -1 is a hole
// (sparse or compressed away), which has no clusters.
type Run struct {
	VCN, LCN, Len int64
}

// maxRuns bounds the extents of one RETRIEVAL_POINTERS_BUFFER we accept.
const maxRuns = 1 << 24

// ParseRetrievalPointers parses a RETRIEVAL_POINTERS_BUFFER (winioctl.h):
// ExtentCount (DWORD), 4 bytes of padding, StartingVcn, then ExtentCount
// pairs of NextVcn and Lcn (LARGE_INTEGER each). It returns the runs and
// the VCN after the last one (where to continue after ERROR_MORE_DATA).
func ParseRetrievalPointers(b []byte) ([]Run, int64, error) {
	if len(b) < 16 {
		return nil, 0, fmt.Errorf("%w: RETRIEVAL_POINTERS_BUFFER of %d bytes", ErrBadRecord, len(b))
	}
	le := binary.LittleEndian
	count := int64(le.Uint32(b))
	vcn := int64(le.Uint64(b[8:]))
	if count > maxRuns || 16+count*16 > int64(len(b)) {
		return nil, 0, fmt.Errorf("%w: %d extents in %d bytes", ErrBadRecord, count, len(b))
	}
	if vcn < 0 {
		return nil, 0, fmt.Errorf("%w: starting VCN %d", ErrBadRecord, vcn)
	}
	runs := make([]Run, 0, count)
	for i := range count {
		e := b[16+16*i:]
		next, lcn := int64(le.Uint64(e)), int64(le.Uint64(e[8:]))
		if next <= vcn || lcn < -1 {
			return nil, 0, fmt.Errorf("%w: extent %d: next VCN %d after VCN %d, LCN %d", ErrBadRecord, i, next, vcn, lcn)
		}
		runs = append(runs, Run{VCN: vcn, LCN: lcn, Len: next - vcn})
		vcn = next
	}
	return runs, vcn, nil
}

// Bitmap is the volume's allocation bitmap from StartLCN: bit i (LSB
// first in each byte) is set when cluster StartLCN+i is in use.
type Bitmap struct {
	StartLCN int64
	Clusters int64
	Bits     []byte
}

// ParseVolumeBitmap parses a VOLUME_BITMAP_BUFFER (winioctl.h):
// StartingLcn, BitmapSize (in clusters), then the bits.
func ParseVolumeBitmap(b []byte) (*Bitmap, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: VOLUME_BITMAP_BUFFER of %d bytes", ErrBadRecord, len(b))
	}
	le := binary.LittleEndian
	start, n := int64(le.Uint64(b)), int64(le.Uint64(b[8:]))
	if start < 0 || n < 0 || (n+7)/8 > int64(len(b)-16) {
		return nil, fmt.Errorf("%w: bitmap from LCN %d of %d clusters in %d bytes", ErrBadRecord, start, n, len(b)-16)
	}
	return &Bitmap{StartLCN: start, Clusters: n, Bits: append([]byte(nil), b[16:16+(n+7)/8]...)}, nil
}

// Used reports whether cluster lcn is in use (false outside the bitmap).
func (m *Bitmap) Used(lcn int64) bool {
	i := lcn - m.StartLCN
	if i < 0 || i >= m.Clusters {
		return false
	}
	return m.Bits[i/8]&(1<<(i%8)) != 0
}

// NewlyUsed returns the runs of clusters in use in cur that were free in
// prev (nil prev: none, there is nothing to compare with). Both must start
// at the same LCN; clusters beyond prev (a grown volume) count as new.
func NewlyUsed(prev, cur *Bitmap) ([]Run, error) {
	if prev == nil {
		return nil, nil
	}
	if prev.StartLCN != cur.StartLCN {
		return nil, fmt.Errorf("volume bitmaps start at LCN %d and %d", prev.StartLCN, cur.StartLCN)
	}
	var runs []Run
	add := func(lcn, n int64) {
		if k := len(runs); k > 0 && runs[k-1].LCN+runs[k-1].Len == lcn {
			runs[k-1].Len += n
			return
		}
		runs = append(runs, Run{VCN: -1, LCN: lcn, Len: n})
	}
	for i := range int64(len(cur.Bits)) {
		var old byte
		if i < int64(len(prev.Bits)) {
			old = prev.Bits[i] & lowBits(prev.Clusters-i*8) // clusters beyond prev are new
		}
		d := cur.Bits[i] &^ old & lowBits(cur.Clusters-i*8)
		for d != 0 {
			b := int64(bits.TrailingZeros8(d))
			add(cur.StartLCN+i*8+b, 1)
			d &= d - 1
		}
	}
	return runs, nil
}

// lowBits is a mask of the low n bits of a byte (all for n >= 8).
func lowBits(n int64) byte {
	if n >= 8 {
		return 0xff
	}
	if n <= 0 {
		return 0
	}
	return byte(1)<<n - 1
}

// UsedRuns returns the runs of clusters in use.
func (m *Bitmap) UsedRuns() []Run {
	var runs []Run
	for i := int64(0); i < m.Clusters; {
		if !m.Used(m.StartLCN + i) {
			i++
			continue
		}
		j := i
		for j < m.Clusters && m.Used(m.StartLCN+j) {
			j++
		}
		runs = append(runs, Run{VCN: -1, LCN: m.StartLCN + i, Len: j - i})
		i = j
	}
	return runs
}

// Layout places a volume on its disk.
type Layout struct {
	// Offset is the partition's byte offset on the whole disk.
	Offset int64
	// Size is the volume's size in bytes.
	Size int64
	// ClusterSize is the NTFS cluster size in bytes.
	ClusterSize int64
}

// ClusterRange is the byte range on the volume of the clusters of r
// (holes have none: ok is false).
func (l Layout) ClusterRange(r Run) (tracker.Range, bool) {
	if r.LCN < 0 || r.Len <= 0 {
		return tracker.Range{}, false
	}
	return tracker.Range{Off: r.LCN * l.ClusterSize, Len: r.Len * l.ClusterSize}, true
}

// FileRanges maps byte ranges of a file to byte ranges of the volume
// through its runs: each range is widened to whole clusters, and parts in
// holes or beyond the runs are dropped (they have no clusters to change).
func (l Layout) FileRanges(runs []Run, ranges []FileRange) []tracker.Range {
	var out []tracker.Range
	cs := l.ClusterSize
	for _, fr := range ranges {
		if fr.Len <= 0 {
			continue
		}
		first, last := fr.Off/cs, (fr.Off+fr.Len-1)/cs // VCNs
		for _, r := range runs {
			lo, hi := max(first, r.VCN), min(last, r.VCN+r.Len-1)
			if lo > hi || r.LCN < 0 {
				continue
			}
			out = append(out, tracker.Range{Off: (r.LCN + lo - r.VCN) * cs, Len: (hi - lo + 1) * cs})
		}
	}
	return out
}

// RunRanges is the byte ranges on the volume of all of runs.
func (l Layout) RunRanges(runs []Run) []tracker.Range {
	var out []tracker.Range
	for _, r := range runs {
		if rg, ok := l.ClusterRange(r); ok {
			out = append(out, rg)
		}
	}
	return out
}

// ToDisk turns a volume byte range into a whole-disk one, clipped to the
// volume.
func (l Layout) ToDisk(r tracker.Range) (tracker.Range, bool) {
	end := min(r.End(), l.Size)
	if r.Off < 0 || r.Off >= end {
		return tracker.Range{}, false
	}
	return tracker.Range{Off: l.Offset + r.Off, Len: end - r.Off}, true
}

// DiskExtent is where a volume lies on a disk (DISK_EXTENT).
type DiskExtent struct {
	Disk           uint32
	Offset, Length int64
}

// ParseDiskExtents parses VOLUME_DISK_EXTENTS (winioctl.h):
// NumberOfDiskExtents (DWORD), 4 bytes of padding, then DISK_EXTENTs of 24
// bytes: DiskNumber (DWORD), padding, StartingOffset, ExtentLength.
func ParseDiskExtents(b []byte) ([]DiskExtent, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: VOLUME_DISK_EXTENTS of %d bytes", ErrBadRecord, len(b))
	}
	le := binary.LittleEndian
	n := int64(le.Uint32(b))
	if 8+24*n > int64(len(b)) {
		return nil, fmt.Errorf("%w: %d disk extents in %d bytes", ErrBadRecord, n, len(b))
	}
	out := make([]DiskExtent, 0, n)
	for i := range n {
		e := b[8+24*i:]
		x := DiskExtent{Disk: le.Uint32(e), Offset: int64(le.Uint64(e[8:])), Length: int64(le.Uint64(e[16:]))}
		if x.Offset < 0 || x.Length <= 0 {
			return nil, fmt.Errorf("%w: disk extent %d+%d", ErrBadRecord, x.Offset, x.Length)
		}
		out = append(out, x)
	}
	return out, nil
}
