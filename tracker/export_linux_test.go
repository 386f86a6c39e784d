//go:build linux

package tracker

// WatchedPrograms returns the IDs of the programs whose skipped runs
// missedRuns adds up (and Gap turns into a resync).
func WatchedPrograms(t *Linux) []uint32 {
	var ids []uint32
	for _, p := range t.progs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, uint32(id))
			}
		}
	}
	return ids
}
