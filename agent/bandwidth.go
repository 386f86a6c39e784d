package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/config"
)

// bandwidthStatus is the upload limit in force, for Status.
func (a *Agent) bandwidthStatus() api.AgentBandwidth {
	return a.cfg.Bandwidth.Status()
}

// bandwidthSource says in words where the limit in force comes from.
func bandwidthSource(b api.AgentBandwidth) string {
	switch b.Source {
	case api.BandwidthFromSchedule:
		return "schedule window " + b.Window
	case api.BandwidthFromOverride:
		return "set with agentctl bandwidth set"
	case api.BandwidthFromLimit:
		return "--bandwidth-limit"
	}
	return "none"
}

// maxBandwidthRequest bounds the body of PUT /v1/bandwidth.
const maxBandwidthRequest = 4 << 10

// handleBandwidth serves api.PathAgentBandwidth on the local API: read
// the limit, set one at run time, return to the configured ones.
func (a *Agent) handleBandwidth(mux *http.ServeMux) {
	lim := a.cfg.Bandwidth
	mux.HandleFunc("GET "+api.PathAgentBandwidth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, lim.Status())
	})
	mux.HandleFunc("PUT "+api.PathAgentBandwidth, func(w http.ResponseWriter, r *http.Request) {
		var req api.AgentBandwidthRequest
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBandwidthRequest))
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.AgentError{Error: "bandwidth request: " + err.Error(),
				Hint: `send {"limit_bytes_per_second": N, "for_seconds": S} (agentctl bandwidth set RATE [--for D])`})
			return
		}
		if req.Limit < 0 || req.Limit > 0 && req.Limit < config.MinRate || req.ForSeconds < 0 {
			writeJSON(w, http.StatusBadRequest, api.AgentError{Error: fmt.Sprintf("bandwidth limit %d B/s for %gs: out of range", req.Limit, req.ForSeconds),
				Hint: fmt.Sprintf("give 0 (no limit) or at least %s, and a duration that is not negative", config.FormatRate(config.MinRate))})
			return
		}
		var until time.Time
		if req.ForSeconds > 0 {
			until = time.Now().Add(time.Duration(req.ForSeconds * float64(time.Second)))
		}
		lim.SetOverride(req.Limit, until)
		st := lim.Status()
		a.log.Info("bandwidth limit set at run time", "limit", config.FormatRate(req.Limit), "until", until, "source", "agentctl")
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("DELETE "+api.PathAgentBandwidth, func(w http.ResponseWriter, r *http.Request) {
		lim.ClearOverride()
		st := lim.Status()
		a.log.Info("bandwidth limit back to the configured one", "limit", config.FormatRate(st.Limit), "source", st.Source)
		writeJSON(w, http.StatusOK, st)
	})
}
