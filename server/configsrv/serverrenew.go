package configsrv

import (
	"fmt"
	"net/http"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// RenewServer handles POST /v1/servers/renew: a joined process server,
// authenticated by its current certificate, gets a new one for the key of
// its CSR, with the same id and names. Only the new one may report from
// then on; the replaced one may only renew again (an answer lost on the
// way). docs/security.md.
func (s *Servers) RenewServer(w http.ResponseWriter, r *http.Request) error {
	id, err := s.joinedServerAs(r, true)
	if err != nil {
		return err
	}
	var req api.RenewRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	csr, err := pki.ParseCSRPEM([]byte(req.CSR))
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "bad csr: " + err.Error(), Remedy: "send one PEM CERTIFICATE REQUEST signed with the key", Err: err}
	}
	presented := r.TLS.PeerCertificates[0].SerialNumber.Text(16)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.servers[id]
	if cur == nil {
		return httpapi.Errorf(http.StatusForbidden, "process server "+id+" has not joined", "join it again")
	}
	rec := *cur
	certPEM, err := s.o.CA.IssueJoined(id, csr, rec.SANs, time.Now())
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "cannot issue a certificate for this csr: " + err.Error(), Remedy: "use an ECDSA P-256, Ed25519 or RSA-2048+ key", Err: err}
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return err
	}
	if presented == rec.Serial {
		rec.Renewed = rec.Serial
	}
	rec.Serial = cert.SerialNumber.Text(16)
	if err := s.serverDir().Put(id, rec); err != nil {
		return fmt.Errorf("save server: %w", err)
	}
	s.servers[id] = &rec
	s.log.Info("process server certificate renewed", "server_id", id, "old_serial", presented, "serial", rec.Serial, "not_after", cert.NotAfter)
	httpapi.WriteJSON(w, http.StatusOK, api.RenewResponse{Certificate: string(certPEM)})
	return nil
}
