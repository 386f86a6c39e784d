package configsrv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// LocalDiscarder is the configuration server's own process role as a
// discard reaches it (process.Role.Discard).
type LocalDiscarder interface {
	Discard(ctx context.Context, m, disk string, seq uint64) (api.DiscardResult, error)
}

// Discard handles POST /v1/machines/{m}/disks/{disk}/discard: the process
// server the machine is assigned to drops the segment whose apply keeps
// failing, with the later ones not applied, and the agent resyncs the disk
// (docs/server.md, "A disk whose apply fails").
func (s *Servers) Discard(w http.ResponseWriter, r *http.Request) error {
	m, err := s.o.Machines.Param(r)
	if err != nil {
		return err
	}
	disk := r.PathValue("disk")
	if err := api.ValidName(disk); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad disk name: "+err.Error(), "give the disk as 'lifeboat machines' lists it")
	}
	var req api.DiscardRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	rec, ok := s.o.Machines.Get(m)
	if !ok {
		return httpapi.Errorf(http.StatusNotFound, "no machine "+m, "see 'lifeboat machines'")
	}
	var res api.DiscardResult
	if rec.Assigned == "" || rec.Assigned == s.localID() {
		ld, ok := s.o.Local.(LocalDiscarder)
		if !ok || !s.hasLocalProcess() {
			return httpapi.Errorf(http.StatusMisdirectedRequest, "this server runs no process role", "see 'lifeboat machines' for the machine's process server")
		}
		if res, err = ld.Discard(r.Context(), m, disk, req.Seq); err != nil {
			return err
		}
		res.ProcessServer = s.localID()
	} else if res, err = s.discardRemote(r.Context(), rec.Assigned, m, disk, req); err != nil {
		return err
	}
	s.log.Warn("segments discarded by the operator", "machine", m, "disk", disk, "seq", res.Seq, "count", res.Count, "process_server", res.ProcessServer)
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// discardRemote asks joined process server id to discard a segment.
func (s *Servers) discardRemote(ctx context.Context, id, m, disk string, req api.DiscardRequest) (api.DiscardResult, error) {
	s.mu.Lock()
	addr := s.beats[id].addr
	s.mu.Unlock()
	if addr == "" {
		return api.DiscardResult{}, &httpapi.Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("process server %s of machine %s has not reported its address", id, m),
			Remedy: "start it, or move the machine with 'lifeboat move --force' (the disks then resync)"}
	}
	hc, err := s.serverClient()
	if err != nil {
		return api.DiscardResult{}, err
	}
	body, _ := json.Marshal(req)
	path := strings.NewReplacer("{m}", m, "{disk}", disk).Replace(api.PathProcessDiscard)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return api.DiscardResult{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return api.DiscardResult{}, &httpapi.Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("reach process server %s (%s)", id, addr),
			Remedy: "start it and discard again", Err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.Unmarshal(b, &e)
		// Its answer is the operator's: the same status, message and
		// remedy, naming the server.
		return api.DiscardResult{}, &httpapi.Error{Status: resp.StatusCode, Code: e.Code, Msg: "process server " + id + ": " + e.Error, Remedy: e.Hint}
	}
	var res api.DiscardResult
	if err := json.Unmarshal(b, &res); err != nil {
		return res, errors.New("process server " + id + ": bad discard answer: " + err.Error())
	}
	res.ProcessServer = id
	return res, nil
}
