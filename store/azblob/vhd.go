package azblob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The fixed-VHD layout (Microsoft's "Virtual Hard Disk Image Format
// Specification", October 2006): the disk's bytes, then a 512-byte
// footer. Azure makes a managed disk of a page blob in this layout when
// its virtual size is a whole number of MiB.
const (
	// FooterSize is the size of a VHD footer.
	FooterSize = 512
	// SizeAlign is what a managed disk's virtual size must be a multiple of.
	SizeAlign = 1 << 20
)

// vhdEpoch is the VHD time stamp's origin: January 1, 2000 12:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// VirtualSize is the VHD's virtual size for a disk of size bytes: size
// rounded up to 1 MiB.
func VirtualSize(size int64) int64 {
	return (size + SizeAlign - 1) / SizeAlign * SizeAlign
}

// BlobSize is the size of the page blob of a disk of size bytes: its
// virtual size plus the footer.
func BlobSize(size int64) int64 { return VirtualSize(size) + FooterSize }

// Footer returns the footer of a fixed VHD of virtual size vsize (a
// multiple of 512), with the disk's unique id and a time stamp.
//
// Creator application is "win " (as Hyper-V writes it): readers such as
// qemu then take the size from the footer's current size, as Azure does,
// rather than from the CHS geometry, which cannot express every size.
func Footer(vsize int64, id [16]byte, stamp time.Time) ([]byte, error) {
	if vsize <= 0 || vsize%512 != 0 {
		return nil, fmt.Errorf("vhd footer: virtual size %d is not a positive multiple of 512", vsize)
	}
	f := make([]byte, FooterSize)
	copy(f[0:8], "conectix")
	binary.BigEndian.PutUint32(f[8:], 0x00000002)  // features: reserved bit, always set
	binary.BigEndian.PutUint32(f[12:], 0x00010000) // file format version 1.0
	binary.BigEndian.PutUint64(f[16:], ^uint64(0)) // data offset: none for a fixed disk
	secs := stamp.Sub(vhdEpoch) / time.Second
	if secs < 0 {
		secs = 0
	}
	binary.BigEndian.PutUint32(f[24:], uint32(secs))
	copy(f[28:32], "win ")
	binary.BigEndian.PutUint32(f[32:], 0x000a0000) // creator version 10.0
	copy(f[36:40], "Wi2k")                         // creator host OS: Windows
	binary.BigEndian.PutUint64(f[40:], uint64(vsize))
	binary.BigEndian.PutUint64(f[48:], uint64(vsize))
	c, h, s := chs(vsize / 512)
	binary.BigEndian.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	binary.BigEndian.PutUint32(f[60:], 2) // disk type: fixed
	copy(f[68:84], id[:])
	binary.BigEndian.PutUint32(f[64:], footerChecksum(f))
	return f, nil
}

// footerChecksum is the one's complement of the sum of the footer's bytes,
// the checksum field excluded.
func footerChecksum(f []byte) uint32 {
	var sum uint32
	for i, b := range f[:FooterSize] {
		if i >= 64 && i < 68 {
			continue
		}
		sum += uint32(b)
	}
	return ^sum
}

// chs is the specification's CHS geometry algorithm (Appendix: CHS
// calculation) for a disk of totalSectors 512-byte sectors.
func chs(totalSectors int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	if totalSectors > 65535*16*255 {
		totalSectors = 65535 * 16 * 255
	}
	var spt, hd, cth int64
	if totalSectors >= 65535*16*63 {
		spt, hd = 255, 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		hd = (cth + 1023) / 1024
		if hd < 4 {
			hd = 4
		}
		if cth >= hd*1024 || hd > 16 {
			spt, hd = 31, 16
			cth = totalSectors / spt
		}
		if cth >= hd*1024 {
			spt, hd = 63, 16
			cth = totalSectors / spt
		}
	}
	return uint16(cth / hd), uint8(hd), uint8(spt)
}

// ParseFooter checks a fixed VHD footer and returns its virtual size.
func ParseFooter(f []byte) (int64, error) {
	switch {
	case len(f) != FooterSize:
		return 0, fmt.Errorf("vhd footer: %d bytes, want %d", len(f), FooterSize)
	case string(f[0:8]) != "conectix":
		return 0, errors.New("vhd footer: no conectix cookie")
	case binary.BigEndian.Uint32(f[60:]) != 2:
		return 0, fmt.Errorf("vhd footer: disk type %d, want 2 (fixed)", binary.BigEndian.Uint32(f[60:]))
	case binary.BigEndian.Uint32(f[64:]) != footerChecksum(f):
		return 0, errors.New("vhd footer: bad checksum")
	}
	return int64(binary.BigEndian.Uint64(f[48:])), nil
}
