package api

import "time"

// RevokedCertificate is one entry of the configuration server's revocation
// list, as a joined process server receives it with every heartbeat
// answer (HeartbeatAnswer.Revoked) and refuses it on its own port from
// then on (docs/security.md).
type RevokedCertificate struct {
	// Serial is the certificate's serial number in hexadecimal.
	Serial string `json:"serial"`
	// Name is its CommonName (a machine, "admin", a process server).
	Name string `json:"name"`
	// Time is when it was revoked; Reason says why.
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// PathServerRenew is where a joined process server renews its
// certificate, authenticated by the current one (RenewRequest →
// RenewResponse; the new certificate has the same id and names).
const PathServerRenew = "/v1/servers/renew"
