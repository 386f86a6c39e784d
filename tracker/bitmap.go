package tracker

import (
	"fmt"
	"math"
	"math/bits"
)

// The dirty bitmap is one array of uint64 words shared by all devices. A
// device owns the words [base, base+nwords). Bit i (bit 0 is the least
// significant) of the device's word w covers granule w*64+i, that is the
// bytes [(w*64+i)*G, (w*64+i+1)*G) of the whole disk, where G is the
// granularity. The BPF program uses the same layout.

// DefaultGranularity is the default number of bytes covered by one bit of
// the dirty bitmap.
const DefaultGranularity = 64 << 10

const (
	minGranularity = 4 << 10
	maxGranularity = 1 << 30
)

// ValidateGranularity returns an error unless g is a power of two between
// 4 KiB and 1 GiB.
func ValidateGranularity(g int64) error {
	if g < minGranularity || g > maxGranularity || g&(g-1) != 0 {
		return fmt.Errorf("bitmap granularity %d: must be a power of two between 4 KiB and 1 GiB", g)
	}
	return nil
}

// mustGranularity panics if g is not a valid granularity: a wrong
// granularity would misplace dirty regions, which must never go unnoticed.
func mustGranularity(g int64) {
	if err := ValidateGranularity(g); err != nil {
		panic("tracker: " + err.Error())
	}
}

// granuleCount returns the number of granules needed to cover diskSize bytes.
func granuleCount(diskSize, granularity int64) int64 {
	if diskSize <= 0 {
		return 0
	}
	n := diskSize / granularity
	if diskSize%granularity != 0 {
		n++
	}
	return n
}

// BitmapWords returns the number of bitmap words needed to cover a disk of
// diskSize bytes, 0 for a size <= 0. It panics if granularity is not valid
// (see ValidateGranularity).
func BitmapWords(diskSize, granularity int64) int64 {
	mustGranularity(granularity)
	return (granuleCount(diskSize, granularity) + 63) / 64
}

// GranuleSpan returns the first and last granule touched by the bytes
// [off, off+n). For n <= 0 or off < 0 it returns the empty span (0, -1),
// so that first > last. An end beyond math.MaxInt64 is cut there. It
// panics if granularity is not valid (see ValidateGranularity).
func GranuleSpan(off, n, granularity int64) (first, last int64) {
	mustGranularity(granularity)
	if n <= 0 || off < 0 {
		return 0, -1
	}
	lastByte := int64(math.MaxInt64)
	if n-1 <= math.MaxInt64-off {
		lastByte = off + n - 1
	}
	return off / granularity, lastByte / granularity
}

// BitmapExtents converts a snapshot of some of a device's bitmap words into
// extents of op OpDirty and generation gen. words[0] is the device's word
// number firstWord. Runs of consecutive set bits, also across word
// boundaries, become one extent; the last extent is clipped to diskSize.
// Bits of granules that lie outside [0, diskSize) are ignored. Zero words
// cost little, so sparse bitmaps are converted fast. It panics if
// granularity is not valid (see ValidateGranularity).
func BitmapExtents(disk string, words []uint64, firstWord int64, granularity, diskSize int64, gen uint64) []Extent {
	mustGranularity(granularity)
	maxGranule := granuleCount(diskSize, granularity) // first granule beyond the disk
	maxWord := (maxGranule + 63) / 64
	if len(words) == 0 || firstWord >= maxWord {
		return nil
	}
	var out []Extent
	// The pending run of set bits is the granules [runStart, runEnd).
	var runStart, runEnd int64
	pending := false
	flush := func() {
		if !pending {
			return
		}
		end := diskSize
		if runEnd < maxGranule {
			end = runEnd * granularity
		}
		off := runStart * granularity
		out = append(out, Extent{Disk: disk, Offset: off, Length: end - off, Op: OpDirty, Gen: gen})
		pending = false
	}
	k := 0
	if firstWord < 0 {
		// Words before the device's word 0 cover no bytes of the disk.
		if -firstWord >= int64(len(words)) {
			return nil
		}
		k = int(-firstWord)
	}
	for ; k < len(words); k++ {
		x := words[k]
		if x == 0 {
			continue
		}
		w := firstWord + int64(k)
		if w >= maxWord {
			break
		}
		base := w * 64
		for x != 0 {
			lo := bits.TrailingZeros64(x)
			// The bits above the run are zero in x>>lo, so ones in its
			// complement: n counts the ones starting at bit lo.
			n := bits.TrailingZeros64(^(x >> uint(lo)))
			if lo+n == 64 {
				x = 0
			} else {
				x &^= (uint64(1)<<uint(n) - 1) << uint(lo)
			}
			start := base + int64(lo)
			if start >= maxGranule {
				break
			}
			end := min(start+int64(n), maxGranule)
			if pending && start == runEnd {
				runEnd = end
				continue
			}
			flush()
			runStart, runEnd, pending = start, end, true
		}
	}
	flush()
	return out
}

// SetBits sets the bits of granules first..last (both included) in words,
// the bitmap words of one device (words[0] is its word 0), as the kernel
// does. Granules outside the words are ignored; nothing is set when
// last < first.
func SetBits(words []uint64, first, last int64) {
	first = max(first, 0)
	last = min(last, int64(len(words))*64-1)
	if first > last {
		return
	}
	fw, lw := first/64, last/64
	lowMask := ^uint64(0) << uint(first%64)    // bits first%64..63
	highMask := ^uint64(0) >> uint(63-last%64) // bits 0..last%64
	if fw == lw {
		words[fw] |= lowMask & highMask
		return
	}
	words[fw] |= lowMask
	for w := fw + 1; w < lw; w++ {
		words[w] = ^uint64(0)
	}
	words[lw] |= highMask
}
