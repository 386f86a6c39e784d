package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// apiPolicy converts a retention policy for the API.
func apiPolicy(m string, r store.Retention, def bool) api.Policy {
	return api.Policy{Machine: m, WindowSeconds: int64(r.Window / time.Second), KeepAllSeconds: int64(r.KeepAll / time.Second),
		ThinSeconds: int64(r.Thin / time.Second), Default: def}
}

// getPolicy handles GET /v1/machines/{m}/policy.
func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) error {
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	rec, _ := s.machines.Get(m)
	httpapi.WriteJSON(w, http.StatusOK, apiPolicy(m, rec.Retention(), rec.Policy == nil))
	return nil
}

// checkPolicy validates a policy of the API.
func checkPolicy(p api.Policy) (store.Retention, error) {
	const hint = "give --window, --keep-all and --thin as durations of whole seconds (24h, 90m): 1s <= keep-all <= window, thin >= 1s"
	const maxSeconds = int64(100 * 365 * 24 * 3600)
	switch {
	case p.WindowSeconds <= 0 || p.WindowSeconds > maxSeconds:
		return store.Retention{}, httpapi.Errorf(http.StatusBadRequest, "window must be at least one second (and under 100 years)", hint)
	case p.KeepAllSeconds <= 0 || p.KeepAllSeconds > p.WindowSeconds:
		return store.Retention{}, httpapi.Errorf(http.StatusBadRequest, "keep-all must be between one second and the window", hint)
	case p.ThinSeconds <= 0 || p.ThinSeconds > maxSeconds:
		return store.Retention{}, httpapi.Errorf(http.StatusBadRequest, "thin must be at least one second", hint)
	}
	return store.Retention{
		Window:  time.Duration(p.WindowSeconds) * time.Second,
		KeepAll: time.Duration(p.KeepAllSeconds) * time.Second,
		Thin:    time.Duration(p.ThinSeconds) * time.Second,
	}, nil
}

// putPolicy handles PUT /v1/machines/{m}/policy: a body with "default":
// true removes the machine's own policy.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) error {
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	var p api.Policy
	if err := httpapi.DecodeJSON(w, r, 64<<10, &p); err != nil {
		return err
	}
	var pol *store.Retention
	if !p.Default {
		ret, err := checkPolicy(p)
		if err != nil {
			return err
		}
		pol = &ret
	}
	if err := s.machines.Update(m, func(rec *machines.Record) { rec.Policy = pol }); err != nil {
		return err
	}
	rec, _ := s.machines.Get(m)
	s.cfg.Logger.With(httpapi.LogComponent, "config", httpapi.LogMachine, m).Info("retention policy set",
		"window", rec.Retention().Window.String(), "keep_all", rec.Retention().KeepAll.String(), "thin", rec.Retention().Thin.String(), "default", pol == nil)
	httpapi.WriteJSON(w, http.StatusOK, apiPolicy(m, rec.Retention(), rec.Policy == nil))
	return nil
}

// pruneNow handles POST /v1/machines/{m}/prune.
func (s *Server) pruneNow(w http.ResponseWriter, r *http.Request) error {
	m, err := s.machineParam(r)
	if err != nil {
		return err
	}
	if !s.servesHere(m) {
		id, addr := s.assignedAddr(nil, m)
		return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s is served by process server %s (%s), whose pruner applies its policy", m, id, addr),
			"only the process server a machine is assigned to prunes it (every prune interval); wait for it, or move the machine here first")
	}
	ans, err := s.prune(r.Context(), m)
	if errors.Is(err, store.ErrNotFound) {
		return &httpapi.Error{Status: http.StatusNotFound, Msg: "machine " + m + " has no data in target storage yet", Remedy: "nothing to prune until its agent has replicated", Err: err}
	}
	if err != nil {
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "prune failed: " + err.Error(),
			Remedy: "target storage could not apply the retention policy; replication goes on: see the server's log, and 'lifeboat machines' for the problem", Err: err}
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// prune applies a machine's retention policy now and notes the outcome
// for the machine's listing.
func (s *Server) prune(ctx context.Context, m string) (api.PruneAnswer, error) {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	rec, _ := s.machines.Get(m)
	pol := rec.Retention()
	now := time.Now().UTC()
	log := s.cfg.Logger.With(httpapi.LogComponent, "pruner", httpapi.LogMachine, m)
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
	}
	if ctx.Err() == nil || err == nil {
		s.machines.Touch(m, func(r *machines.Record) { r.LastPrune = st })
	}
	if err != nil {
		return api.PruneAnswer{}, err
	}
	return api.PruneAnswer{Machine: m, Policy: apiPolicy(m, pol, rec.Policy == nil), Time: now, Result: st.Result}, nil
}

// pruner applies the retention policy of every protected machine with data
// in target storage every interval, until ctx is done. Machines failed over
// or committed are left alone: their points are kept for the operator.
// Errors are logged and shown in the machine's listing, never fatal.
func (s *Server) pruner(ctx context.Context, interval time.Duration) {
	log := s.cfg.Logger.With(httpapi.LogComponent, "pruner")
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
			if rec, _ := s.machines.Get(m); rec.State != "" || !s.servesHere(m) {
				continue // another process server prunes it
			}
			s.prune(ctx, m) // logged and noted by prune
		}
	}
}
