package console

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Sampler is what the history reads of the machines: the admin API's
// own status view (what GET /v1/machines answers).
type Sampler interface {
	Names(ctx context.Context) ([]string, error)
	Status(ctx context.Context, machine string) (api.Machine, error)
}

// Sample is one point of a machine's history.
type Sample struct {
	Time time.Time `json:"time"`
	// LagSeconds is the age of the newest recovery point (the RPO
	// lag), or -1 when the machine has no point.
	LagSeconds float64 `json:"lag_seconds"`
	// Points counts the listed recovery points.
	Points int `json:"points"`
	// Segments is the number of segments the server has received for
	// all the machine's disks so far; its rise between samples is the
	// churn.
	Segments uint64 `json:"segments"`
}

// history keeps, per machine, the last n samples. Safe for concurrent
// use.
type history struct {
	n  int
	mu sync.Mutex
	m  map[string][]Sample
}

func newHistory(n int) *history { return &history{n: n, m: map[string][]Sample{}} }

func sampleOf(m api.Machine, now time.Time) Sample {
	s := Sample{Time: now.UTC().Truncate(time.Second), LagSeconds: -1, Points: m.Points}
	if m.LatestPoint != nil {
		s.LagSeconds = now.Sub(m.LatestPoint.Time).Seconds()
	}
	for _, d := range m.Disks {
		s.Segments += d.NextSeq
	}
	return s
}

func (h *history) add(machine string, s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ss := append(h.m[machine], s)
	if len(ss) > h.n {
		ss = append(ss[:0:0], ss[len(ss)-h.n:]...)
	}
	h.m[machine] = ss
}

// keep drops the machines not in names.
func (h *history) keep(names []string) {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := range h.m {
		if !set[n] {
			delete(h.m, n)
		}
	}
}

func (h *history) get(machine string) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]Sample{}, h.m[machine]...)
	return out
}

// sample records one sample of every machine.
func (h *history) sample(ctx context.Context, src Sampler, log *slog.Logger) {
	names, err := src.Names(ctx)
	if err != nil {
		log.Warn("console history: list machines", "err", err)
		return
	}
	h.keep(names)
	for _, n := range names {
		m, err := src.Status(ctx, n)
		if err != nil {
			log.Warn("console history: machine status", "machine", n, "err", err)
			continue
		}
		h.add(n, sampleOf(m, time.Now()))
	}
}
