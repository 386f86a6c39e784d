package configsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// PolicyMachines is what the retention policies need of the machines: the
// machine of an admin URL, their records, where they are served and the
// local pruner.
type PolicyMachines interface {
	// Param returns the machine of an admin URL, which must be known.
	Param(r *http.Request) (string, error)
	Get(name string) (machines.Record, bool)
	Update(name string, f func(m *machines.Record)) error
	// ServesHere says whether the local process role serves the machine.
	ServesHere(m string) bool
	AssignedAddr(r *http.Request, m string) (id, addr string)
	// Prune applies the machine's policy now (the local process role).
	Prune(ctx context.Context, m string) (api.PruneAnswer, error)
}

// Policies handles the machines' retention policies in the admin API:
// /v1/machines/{m}/policy and /v1/machines/{m}/prune.
type Policies struct {
	m   PolicyMachines
	log *slog.Logger
}

// NewPolicies returns the policies' handlers; log nil means
// slog.Default().
func NewPolicies(m PolicyMachines, log *slog.Logger) *Policies {
	if log == nil {
		log = slog.Default()
	}
	return &Policies{m: m, log: log}
}

// Get handles GET /v1/machines/{m}/policy.
func (s *Policies) Get(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	rec, _ := s.m.Get(m)
	httpapi.WriteJSON(w, http.StatusOK, rec.APIPolicy(m))
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

// Put handles PUT /v1/machines/{m}/policy: a body with "default":
// true removes the machine's own policy.
func (s *Policies) Put(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
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
	if err := s.m.Update(m, func(rec *machines.Record) { rec.Policy = pol }); err != nil {
		return err
	}
	rec, _ := s.m.Get(m)
	s.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, m).Info("retention policy set",
		"window", rec.Retention().Window.String(), "keep_all", rec.Retention().KeepAll.String(), "thin", rec.Retention().Thin.String(), "default", pol == nil)
	httpapi.WriteJSON(w, http.StatusOK, rec.APIPolicy(m))
	return nil
}

// PruneNow handles POST /v1/machines/{m}/prune.
func (s *Policies) PruneNow(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	if !s.m.ServesHere(m) {
		id, addr := s.m.AssignedAddr(nil, m)
		return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s is served by process server %s (%s), whose pruner applies its policy", m, id, addr),
			"only the process server a machine is assigned to prunes it (every prune interval); wait for it, or move the machine here first")
	}
	ans, err := s.m.Prune(r.Context(), m)
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
