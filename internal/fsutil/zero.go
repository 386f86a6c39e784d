package fsutil

// zeros is a read-only block of zeros to compare data with.
var zeros [64 << 10]byte

// IsZero reports whether b holds only zero bytes. It compares b with a
// block of zeros 64 KiB at a time, which the runtime does with vector
// instructions (several times faster than a byte loop on zero blocks, the
// common case of a sparse disk), stopping at the first block of data.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if string(b[:k]) != string(zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
