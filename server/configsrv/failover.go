package configsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// FailoverMachines is what a failover needs of the machines: the machine
// of an admin URL, the records, the points and the status view.
type FailoverMachines interface {
	Param(r *http.Request) (string, error)
	Get(name string) (machines.Record, bool)
	UpdateErr(name string, f func(m *machines.Record) error) error
	Points(ctx context.Context, m string) ([]api.Point, error)
	Status(ctx context.Context, m string) (api.Machine, error)
}

// Materializer writes a machine's disks at a point as images (target
// storage).
type Materializer interface {
	Materialize(ctx context.Context, machine, pointID, outDir string) ([]store.Image, error)
}

// ImageChecker checks the filesystems of an image read-only
// (recovery.Checker).
type ImageChecker interface {
	CheckImage(ctx context.Context, path string) ([]recovery.FSCheck, error)
}

// Failovers fails machines over (test or real) and commits real
// failovers: /v1/machines/{m}/failover and /commit.
type Failovers struct {
	m       FailoverMachines
	store   Materializer
	checker ImageChecker
	log     *slog.Logger
	// Tests records the images of test failovers for their cleanup
	// (testfailovers.go); nil records none.
	Tests *TestFailovers
}

// NewFailovers returns the failovers' handlers; log nil means
// slog.Default().
func NewFailovers(m FailoverMachines, st Materializer, checker ImageChecker, log *slog.Logger) *Failovers {
	if log == nil {
		log = slog.Default()
	}
	return &Failovers{m: m, store: st, checker: checker, log: log}
}

// Failover handles POST /v1/machines/{m}/failover.
func (s *Failovers) Failover(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	var req api.FailoverRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	res, err := s.Run(r.Context(), m, req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// Run materializes a machine's disks at a point into req.Out,
// checks their filesystems if asked, and for a real failover whose check
// (if any) passed records the machine as failed over. A failed check is in
// the result (CheckOK false), not an error; the images stay.
func (s *Failovers) Run(ctx context.Context, m string, req api.FailoverRequest) (api.FailoverResult, error) {
	start := time.Now()
	if req.Point == "" {
		return api.FailoverResult{}, httpapi.Errorf(http.StatusBadRequest, "no point given", "give a point id, latest or latest-app")
	}
	if req.ToBlob != "" {
		if err := s.checkToBlob(req); err != nil {
			return api.FailoverResult{}, err
		}
	} else if req.Out == "" || !filepath.IsAbs(req.Out) {
		return api.FailoverResult{}, httpapi.Errorf(http.StatusBadRequest, "out must be an absolute directory", "give --out DIR: a directory on the server host")
	}
	if rec, _ := s.m.Get(m); !req.Test && rec.State == api.StateCommitted {
		return api.FailoverResult{}, committedError(m, rec, "a committed machine cannot fail over again: use --test to materialize its points, or register it again to protect it anew")
	}
	pts, err := s.m.Points(ctx, m)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.FailoverResult{}, err
	}
	pt, err := selectPoint(pts, req.Point, m)
	if err != nil {
		return api.FailoverResult{}, err
	}
	log := s.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, m, httpapi.LogPoint, pt.ID)
	if req.ToBlob != "" {
		return s.toBlob(ctx, m, pt, req, start, log)
	}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return api.FailoverResult{}, &httpapi.Error{Status: http.StatusBadRequest, Msg: "cannot create the output directory: " + err.Error(), Remedy: "give --out a directory the server may write", Err: err}
	}
	log.Info("materializing", "test", req.Test, "out", req.Out)
	imgs, err := s.store.Materialize(ctx, m, pt.ID, req.Out)
	if err != nil {
		return api.FailoverResult{}, materializeError(err)
	}
	res := api.FailoverResult{Machine: m, Point: pt, Test: req.Test, Images: make([]api.Image, len(imgs)), Checks: []api.FSCheck{}, CheckOK: true}
	for i, im := range imgs {
		res.Images[i] = api.Image{Disk: im.Disk, Path: im.Path, Size: im.Size}
	}
	log.Info("failover images written", "test", req.Test, "images", len(imgs))
	if s.Tests != nil {
		var terr error
		if req.Test {
			_, terr = s.Tests.Add(m, pt, req.Out, res.Images)
		} else {
			terr = s.Tests.Forget(res.Images)
		}
		if terr != nil {
			log.Warn("test failover not recorded for its cleanup", httpapi.LogErr, terr)
		}
	}
	if req.Check {
		for _, im := range res.Images {
			cs := s.checkImage(ctx, im)
			for _, c := range cs {
				res.CheckOK = res.CheckOK && c.OK
			}
			res.Checks = append(res.Checks, cs...)
		}
		if ctx.Err() != nil {
			return api.FailoverResult{}, ctx.Err()
		}
		log.Info("filesystems checked", "ok", res.CheckOK, "filesystems", len(res.Checks))
	}
	return s.record(m, pt, req, res, start, log)
}

// record records a real failover whose check (if any) passed, and
// completes its result.
func (s *Failovers) record(m string, pt api.Point, req api.FailoverRequest, res api.FailoverResult, start time.Time, log *slog.Logger) (api.FailoverResult, error) {
	rec, _ := s.m.Get(m)
	res.State = rec.StateName()
	if !req.Test && res.CheckOK {
		now := time.Now().UTC()
		err := s.m.UpdateErr(m, func(rec *machines.Record) error {
			if rec.State == api.StateCommitted {
				return committedError(m, *rec, "the machine was committed while the failover ran; its images are kept")
			}
			rec.State = api.StateFailedOver
			rec.Failover = &api.FailoverRecord{Point: pt, Time: now, Out: failoverOut(req, res), Images: res.Images}
			return nil
		})
		if err != nil {
			return api.FailoverResult{}, err
		}
		res.State = api.StateFailedOver
		log.Warn("machine failed over", "out", failoverOut(req, res))
	} else if !req.Test {
		log.Warn("failover check failed: machine state unchanged", "out", failoverOut(req, res))
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

func materializeError(err error) error {
	switch {
	case errors.Is(err, store.ErrPruned):
		return &httpapi.Error{Status: http.StatusConflict, Msg: "the point was dropped by retention while the failover started", Remedy: "choose a point that 'lifeboat points MACHINE' shows as materializable", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &httpapi.Error{Status: http.StatusNotFound, Msg: "point not found in target storage", Remedy: "'lifeboat points MACHINE' lists the points", Err: err}
	case isNoSpace(err):
		return &httpapi.Error{Status: http.StatusInsufficientStorage, Msg: "output disk full", Remedy: "free space where --out points, or choose another --out", Err: err}
	case errors.Is(err, os.ErrExist):
		return &httpapi.Error{Status: http.StatusConflict, Msg: "an image already exists in the output directory", Remedy: "failover never overwrites an image: choose an empty --out", Err: err}
	case errors.Is(err, context.Canceled):
		return err
	}
	return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "materialize failed: " + err.Error(), Remedy: "see the server's log", Err: err}
}

// checkImage checks the filesystems of one image read-only.
func (s *Failovers) checkImage(ctx context.Context, im api.Image) []api.FSCheck {
	cs, err := s.checker.CheckImage(ctx, im.Path)
	if err != nil {
		return []api.FSCheck{{Disk: im.Disk, Image: im.Path, Size: im.Size, ExitStatus: -1, Result: recovery.ResultFailed,
			Summary: err.Error()}}
	}
	out := make([]api.FSCheck, len(cs))
	for i, c := range cs {
		out[i] = api.FSCheck{
			Disk: im.Disk, Image: im.Path, Partition: c.Partition, Offset: c.Offset, Size: c.Size,
			Type: c.Type, Tool: c.Tool, ExitStatus: c.ExitStatus, Result: c.Result, OK: c.OK(),
			Summary: c.Summary, Output: c.Output, DurationSeconds: c.Duration.Seconds(),
		}
	}
	return out
}

// selectPoint picks the point a failover asks for: only a materializable
// point can be failed over to.
func selectPoint(pts []api.Point, sel, machine string) (api.Point, error) {
	if len(pts) == 0 {
		return api.Point{}, httpapi.Errorf(http.StatusNotFound, "machine "+machine+" has no recovery point yet",
			"wait until the agent has cut a point and it is applied: 'lifeboat points "+machine+"'")
	}
	switch sel {
	case api.PointLatest, api.PointLatestApp:
		for i := len(pts) - 1; i >= 0; i-- {
			if pts[i].Materializable && (sel == api.PointLatest || pts[i].Kind == "app") {
				return pts[i], nil
			}
		}
		if sel == api.PointLatestApp {
			return api.Point{}, httpapi.Errorf(http.StatusNotFound, "machine "+machine+" has no app-consistent point",
				"take one with 'agentctl bookmark --app-consistent' on the machine, or use --point latest")
		}
		return api.Point{}, httpapi.Errorf(http.StatusNotFound, "machine "+machine+" has no materializable point",
			"retention merged every point into the replica base: wait for the agent to cut a new one")
	}
	for _, p := range pts {
		if p.ID == sel {
			if !p.Materializable {
				return api.Point{}, httpapi.Errorf(http.StatusConflict, "point "+strconv.Quote(sel)+" of machine "+machine+" is no longer materializable",
					"retention merged it into the replica base: choose a point that 'lifeboat points "+machine+"' shows as materializable")
			}
			return p, nil
		}
	}
	return api.Point{}, httpapi.Errorf(http.StatusNotFound, "no point "+strconv.Quote(sel)+" for machine "+machine,
		"'lifeboat points "+machine+"' lists the points")
}

// committedError is the answer to what a committed machine may no longer do.
func committedError(m string, rec machines.Record, hint string) *httpapi.Error {
	when := "?"
	if rec.Committed != nil {
		when = rec.Committed.UTC().Format(time.RFC3339)
	}
	return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s was failed over and committed at %s", m, when), hint)
}

// Commit handles POST /v1/machines/{m}/commit: it ends the protection of
// the old source of a machine that has failed over for real.
func (s *Failovers) Commit(w http.ResponseWriter, r *http.Request) error {
	m, err := s.m.Param(r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	err = s.m.UpdateErr(m, func(rec *machines.Record) error {
		switch rec.State {
		case api.StateCommitted:
			return committedError(m, *rec, "nothing to do: it is already committed")
		case api.StateFailedOver:
		default:
			return httpapi.Errorf(http.StatusConflict, "machine "+m+" has not failed over",
				"commit follows a real failover: 'lifeboat failover "+m+" --point ID|latest|latest-app --out DIR' (without --test)")
		}
		rec.State = api.StateCommitted
		rec.Committed = &now
		return nil
	})
	if err != nil {
		return err
	}
	s.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, m).Warn("failover committed: the process role refuses the old source from now on")
	st, err := s.m.Status(r.Context(), m)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

// isNoSpace reports a full disk (or quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
