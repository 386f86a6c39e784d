package server

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// postProbe reads and discards the body of an authenticated machine's
// link probe (agentctl assess), up to api.MaxProbeBytes, and says how much
// it read in how long. Nothing is stored.
func (s *Server) postProbe(w http.ResponseWriter, r *http.Request, machine string) error {
	if r.ContentLength > api.MaxProbeBytes {
		return errorf(http.StatusRequestEntityTooLarge, "probe too large", "send at most 1 GiB per probe")
	}
	start := time.Now()
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, api.MaxProbeBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "probe too large", "send at most 1 GiB per probe")
		}
		return errorf(http.StatusBadRequest, "probe body: "+err.Error(), "retry the probe")
	}
	writeJSON(w, http.StatusOK, api.ProbeResult{Bytes: n, Seconds: time.Since(start).Seconds()})
	return nil
}
