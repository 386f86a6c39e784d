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

// RingSizes returns the bytes of the ring buffer and of the queue rings
// (all CPUs) as loaded or adopted.
func RingSizes(t *Linux) (events, queues int) {
	return int(t.maps.Events.MaxEntries()), int(t.maps.Qring.MaxEntries()) * qrecSize
}

// QueueRecordSize is the bytes of a queue-ring record.
const QueueRecordSize = qrecSize
