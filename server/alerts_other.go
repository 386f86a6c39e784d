//go:build !unix

package server

// cacheSpace is not implemented off Unix: the cache-space-low alert and
// the cache space metrics are then absent (docs/metrics.md).
func cacheSpace(dir string) (free, total uint64, err error) {
	return 0, 0, errNoStatfs
}
