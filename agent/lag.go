package agent

import (
	"slices"
	"time"
)

// lagStats keeps the latest RPO lag samples of a disk.
type lagStats struct {
	samples []time.Duration // ring of the last lagKeep samples
	next    int
	total   uint64
}

const lagKeep = 4096

func (l *lagStats) add(d time.Duration) {
	if len(l.samples) < lagKeep {
		l.samples = append(l.samples, d)
	} else {
		l.samples[l.next] = d
		l.next = (l.next + 1) % lagKeep
	}
	l.total++
}

func (l *lagStats) summary() Lag {
	s := Lag{Samples: l.total}
	if len(l.samples) == 0 {
		return s
	}
	sorted := slices.Clone(l.samples)
	slices.Sort(sorted)
	at := func(q float64) float64 { return sorted[int(q*float64(len(sorted)-1))].Seconds() }
	s.P50, s.P99, s.Max = at(0.50), at(0.99), sorted[len(sorted)-1].Seconds()
	return s
}
