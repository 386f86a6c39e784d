package process

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// PruneRecords is what the pruner reads and notes of the machine records
// (*machines.Registry).
type PruneRecords interface {
	Get(name string) (machines.Record, bool)
	Touch(name string, f func(m *machines.Record))
}

// PruneStore is the part of target storage the pruner uses.
type PruneStore interface {
	Machines(ctx context.Context) ([]string, error)
	Prune(ctx context.Context, machine string, r store.Retention, now time.Time) (store.PruneResult, error)
}

// Server says whether a machine is served by this process server: only
// the server a machine is assigned to prunes it.
type Server interface {
	ServesHere(machine string) bool
}

// Pruner applies the machines' retention policies to target storage (the
// process role's part of retention: docs/ARCHITECTURE.md §1).
type Pruner struct {
	store  PruneStore
	recs   PruneRecords
	serves Server
	log    *slog.Logger // component "pruner"
	mu     sync.Mutex   // one prune at a time
}

// NewPruner returns a Pruner; log nil means slog.Default().
func NewPruner(st PruneStore, recs PruneRecords, serves Server, log *slog.Logger) *Pruner {
	if log == nil {
		log = slog.Default()
	}
	return &Pruner{store: st, recs: recs, serves: serves, log: log.With(httpapi.LogComponent, "pruner")}
}

// Prune applies a machine's retention policy now and notes the outcome
// for the machine's listing.
func (s *Pruner) Prune(ctx context.Context, m string) (api.PruneAnswer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _ := s.recs.Get(m)
	pol := rec.Retention()
	now := time.Now().UTC()
	log := s.log.With(httpapi.LogMachine, m)
	res, err := s.store.Prune(ctx, m, pol, now)
	st := &api.PruneStatus{Time: now, Result: api.PruneResult{DroppedPoints: []string{}}}
	if err != nil {
		st.Error = err.Error()
		if ctx.Err() == nil {
			log.Error("prune failed", httpapi.LogErr, err)
		}
	} else {
		st.Result = api.PruneResult{MergedSegments: res.Merged, MergedBytes: res.MergedBytes, DroppedPoints: slices.Clone(res.Dropped)}
		if st.Result.DroppedPoints == nil {
			st.Result.DroppedPoints = []string{}
		}
		log.Info("pruned", "merged_segments", res.Merged, "merged_bytes", res.MergedBytes, "dropped_points", len(res.Dropped))
		if len(res.Deferred) > 0 {
			log.Info("folding deferred: a failover reads the machine; the next prune folds", "disks", strings.Join(res.Deferred, ","))
		}
	}
	if ctx.Err() == nil || err == nil {
		s.recs.Touch(m, func(r *machines.Record) { r.LastPrune = st })
	}
	if err != nil {
		return api.PruneAnswer{}, err
	}
	return api.PruneAnswer{Machine: m, Policy: rec.APIPolicy(m), Time: now, Result: st.Result}, nil
}

// Run applies the retention policy of every protected machine with data
// in target storage every interval, until ctx is done. Machines failed over
// or committed are left alone: their points are kept for the operator.
// Errors are logged and shown in the machine's listing, never fatal.
func (s *Pruner) Run(ctx context.Context, interval time.Duration) {
	log := s.log
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := s.store.Machines(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("list machines of target storage", httpapi.LogErr, err)
			}
			continue
		}
		for _, m := range ms {
			if ctx.Err() != nil {
				return
			}
			if rec, _ := s.recs.Get(m); rec.State != "" || !s.serves.ServesHere(m) {
				continue // another process server prunes it
			}
			s.Prune(ctx, m) // logged and noted by prune
		}
	}
}
