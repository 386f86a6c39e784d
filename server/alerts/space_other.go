//go:build !unix

package alerts

// Space is not implemented off Unix: the cache-space-low alert and the
// cache space metrics are then absent (docs/metrics.md).
func Space(cacheDir, dataDir string) (free, total uint64, err error) {
	return 0, 0, ErrNoStatfs
}
