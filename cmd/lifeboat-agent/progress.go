package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// progressEvery is how often the progress of an initial sync or resync is
// logged.
const progressEvery = 10 * time.Second

// statuser is what logProgress reads: the agent's status.
type statuser interface{ Status() api.AgentStatus }

// logProgress logs, every interval, the progress of each disk in initial
// sync or resync (percent, rate over the last interval, ETA), and one line
// when a disk's sync ends, until ctx ends.
func logProgress(ctx context.Context, a statuser, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	type seen struct {
		done  int64
		at    time.Time
		state api.AgentDiskState
		start time.Time
	}
	last := map[string]seen{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, d := range a.Status().Disks {
			prev, had := last[d.Name]
			if d.Sync == nil {
				if had && prev.state != d.State {
					log.Info("sync finished", "disk", d.Name, "was", string(prev.state), "state", string(d.State),
						"took", now.Sub(prev.start).Round(time.Second).String())
				}
				delete(last, d.Name)
				continue
			}
			s := d.Sync
			rate := s.Rate
			if had && prev.state == d.State && now.After(prev.at) && s.DoneBytes >= prev.done {
				rate = float64(s.DoneBytes-prev.done) / now.Sub(prev.at).Seconds()
			}
			eta := "unknown"
			if rate > 0 {
				eta = time.Duration(float64(s.TotalBytes-s.DoneBytes) / rate * float64(time.Second)).Round(time.Second).String()
			}
			pct := 0.0
			if s.TotalBytes > 0 {
				pct = 100 * float64(s.DoneBytes) / float64(s.TotalBytes)
			}
			log.Info("sync progress", "disk", d.Name, "state", string(d.State), "percent", fmt.Sprintf("%.1f", pct),
				"done_bytes", s.DoneBytes, "total_bytes", s.TotalBytes,
				"rate", fmt.Sprintf("%.1f MiB/s", rate/(1<<20)), "eta", eta)
			start := s.Started
			if had && !prev.start.IsZero() {
				start = prev.start
			}
			last[d.Name] = seen{done: s.DoneBytes, at: now, state: d.State, start: start}
		}
	}
}
