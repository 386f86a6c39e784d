package process

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// postProbe reads and discards the body of an authenticated machine's
// link probe (agentctl assess), up to api.MaxProbeBytes, and says how much
// it read in how long. Nothing is stored.
func (p *Role) postProbe(w http.ResponseWriter, r *http.Request, machine string) error {
	if r.ContentLength > api.MaxProbeBytes {
		return httpapi.Errorf(http.StatusRequestEntityTooLarge, "probe too large", "send at most 1 GiB per probe")
	}
	start := time.Now()
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, api.MaxProbeBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return httpapi.Errorf(http.StatusRequestEntityTooLarge, "probe too large", "send at most 1 GiB per probe")
		}
		return httpapi.Errorf(http.StatusBadRequest, "probe body: "+err.Error(), "retry the probe")
	}
	httpapi.WriteJSON(w, http.StatusOK, api.ProbeResult{Bytes: n, Seconds: time.Since(start).Seconds()})
	return nil
}
