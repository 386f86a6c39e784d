package api

import "time"

// Paths of the scale-out endpoints (docs/protocol.md, "Scale-out").
const (
	// PathServerJoin is where a process server joins the configuration
	// server with the registration passphrase and gets its certificate
	// (configuration role, no client certificate).
	PathServerJoin = "/v1/servers/join"
	// PathServerHeartbeat is where a joined process server reports
	// itself and learns the machines assigned to it (configuration role,
	// the process server's certificate).
	PathServerHeartbeat = "/v1/servers/heartbeat"
	// PathServers lists the process servers (admin).
	PathServers = "/v1/servers"
	// PathMove moves a machine to another process server (admin).
	PathMove = "/v1/machines/{m}/move"
	// PathDrain asks a process server to stop accepting a machine's
	// segments and to apply every one it acknowledged (process role, the
	// configuration server's certificate).
	PathDrain = "/v1/drain/{m}"
)

// DefaultHeartbeatSeconds is how often a joined process server reports to
// the configuration server; a server silent for HealthyMissed of them is
// shown unhealthy.
const (
	DefaultHeartbeatSeconds = 2
	HealthyMissed           = 5
)

// JoinRequest is the body of POST /v1/servers/join.
type JoinRequest struct {
	// ID names the process server: 1 to 63 of [A-Za-z0-9._-].
	ID string `json:"id"`
	// Nonce is 32 random bytes, hex.
	Nonce string `json:"nonce"`
	// CSR is a PEM CERTIFICATE REQUEST of the server's key.
	CSR string `json:"csr"`
	// SANs are the DNS names and IP addresses agents reach it by.
	SANs []string `json:"sans"`
	// Proof is JoinProof of the passphrase.
	Proof string `json:"passphrase_proof"`
}

// JoinResponse answers a join.
type JoinResponse struct {
	// Certificate is the process server's certificate (PEM).
	Certificate string `json:"certificate"`
	// CA is the CA certificate (PEM) that agents' certificates chain to.
	CA string `json:"ca"`
	// ConfigID is the configuration server's own id: the process server
	// accepts drain requests only from its certificate.
	ConfigID string `json:"config_id"`
	// ServerProof is ServerProof(passphrase, nonce, CA).
	ServerProof string `json:"server_proof"`
}

// Heartbeat is the body of PUT /v1/servers/heartbeat.
type Heartbeat struct {
	// Address is the process role's host:port that agents use.
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	// Machines are the machines the server holds state of.
	Machines []ServedMachine `json:"machines"`
	// RevokedDigest identifies the revocation list the server holds
	// (HeartbeatAnswer.Revoked comes only when it differs).
	RevokedDigest string `json:"revoked_digest,omitempty"`
}

// ServedMachine is what a process server reports of one machine.
type ServedMachine struct {
	Machine  string      `json:"machine"`
	LastSeen *time.Time  `json:"last_seen"`
	Disks    []DiskState `json:"disks"`
	Problems []string    `json:"problems"`
}

// HeartbeatAnswer answers a heartbeat.
type HeartbeatAnswer struct {
	// ID is the process server's id, as the configuration server knows it.
	ID string `json:"id"`
	// Machines are the machines assigned to the server.
	Machines []Assignment `json:"machines"`
	// IntervalSeconds is when to report next.
	IntervalSeconds int64 `json:"interval_seconds"`
	// Revoked is the configuration server's whole revocation list, when
	// Heartbeat.RevokedDigest is not its digest.
	Revoked []RevokedCertificate `json:"revoked,omitempty"`
}

// Assignment is a machine assigned to a process server, with what the
// process server needs to check its requests.
type Assignment struct {
	Machine string `json:"machine"`
	// Epoch grows with every move of the machine.
	Epoch uint64 `json:"epoch"`
	// State is the machine's state (StateProtected, StateCommitted...).
	State string `json:"state"`
	// Serial of the certificate of the latest registration, and whether
	// only that one may replicate.
	Serial     string `json:"serial"`
	SerialOnly bool   `json:"serial_only"`
	// Policy is the machine's retention policy.
	Policy Policy `json:"policy"`
}

// ProcessServer is one process server as GET /v1/servers lists it.
type ProcessServer struct {
	ID string `json:"id"`
	// Address is the host:port agents replicate to.
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	// Local is true for the configuration server's own process role.
	Local bool `json:"local"`
	// Machines are the machines assigned to it, sorted.
	Machines []string `json:"machines"`
	// Healthy: it reported within HealthyMissed heartbeats (always true
	// for the local one).
	Healthy bool `json:"healthy"`
	// LastHeartbeat is its last report, null for the local one or if it
	// has not reported since the configuration server started.
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	// Joined is when it joined; null for the local one.
	Joined *time.Time `json:"joined"`
	// Problems need the operator's attention, each with its remedy.
	Problems []string `json:"problems"`
}

// MoveRequest is the body of POST /v1/machines/{m}/move.
type MoveRequest struct {
	// To is the id of the process server to move to.
	To string `json:"to"`
	// Force moves without draining the current process server (when it
	// is gone for good): segments it acknowledged but did not apply are
	// lost and the machine's disks need a resync.
	Force bool `json:"force"`
}

// MoveResult answers a move.
type MoveResult struct {
	Machine string `json:"machine"`
	From    string `json:"from"`
	To      string `json:"to"`
	Epoch   uint64 `json:"epoch"`
	// Drained is the state of each disk once the old process server
	// applied everything it acknowledged (empty when forced).
	Drained []DiskState `json:"drained"`
	Forced  bool        `json:"forced"`
}

// DrainRequest is the body of POST /v1/drain/{m}.
type DrainRequest struct {
	// Epoch is the machine's epoch after the move: the server refuses
	// the machine until it is assigned to it with a larger one.
	Epoch uint64 `json:"epoch"`
	// To is the id of the process server the machine moves to.
	To string `json:"to"`
}

// DrainResult answers a drain: every disk fully applied.
type DrainResult struct {
	Disks []DiskState `json:"disks"`
}

// JoinProof is a process server's proof that it knows the passphrase:
// HMAC-SHA256(passphrase, "lifeboat-join-v1\n" + id + "\n" + nonce + "\n"
// + csr), lowercase hex. Its label keeps it apart from RegisterProof.
func JoinProof(passphrase, id, nonce, csr string) string {
	return mac(passphrase, "lifeboat-join-v1\n"+id+"\n"+nonce+"\n"+csr)
}
