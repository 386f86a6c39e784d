package api

import (
	"fmt"
	"time"
)

// Version is the protocol version, the "v1" in every path.
const Version = "v1"

// Paths of the endpoints. {disk}, {seq}, {id} and {m} are path values.
const (
	// PathRegister is the registration endpoint (configuration role).
	PathRegister = "/v1/register"
	// PathMachine is where an agent declares its disks (process role).
	PathMachine = "/v1/machine"
	// PathDiskState is the replication state of one disk (process role).
	PathDiskState = "/v1/disks/{disk}/state"
	// PathSegment receives one segment (process role).
	PathSegment = "/v1/disks/{disk}/segments/{seq}"
	// PathHashes returns block hashes of a replica (process role).
	PathHashes = "/v1/disks/{disk}/hashes"
	// PathPoint tells whether a recovery point is durable (process role).
	PathPoint = "/v1/points/{id}"
	// PathMachines lists the machines (admin).
	PathMachines = "/v1/machines"
	// PathPoints lists a machine's recovery points (admin).
	PathPoints = "/v1/machines/{m}/points"
	// PathFailover materializes a machine's disks (admin).
	PathFailover = "/v1/machines/{m}/failover"
)

// MaxSegmentBytes is the default limit on the size of one segment upload.
const MaxSegmentBytes = 256 << 20

// AdminName is the CommonName of the administrator's client certificate. No
// machine may register under it.
const AdminName = "admin"

// ValidName reports whether s may name a machine or a disk: 1 to 63 bytes
// of ASCII letters, digits, '.', '_' and '-', and not "." or "..". Names
// become file names on the server.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("name is empty")
	}
	if len(s) > 63 {
		return fmt.Errorf("name %.20q...: longer than 63 bytes", s)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("name %q is reserved", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("name %q: character %q not allowed (letters, digits, '.', '_', '-')", s, c)
	}
	return nil
}

// Error is the body of every error answer (4xx and 5xx).
type Error struct {
	// Error says what went wrong, in a short lowercase phrase.
	Error string `json:"error"`
	// Hint tells the operator what to do about it.
	Hint string `json:"hint"`
	// Expected is the sequence number the server waits for, on a 409
	// answer to a segment upload.
	Expected *uint64 `json:"expected,omitempty"`
}

// RegisterRequest is the body of POST /v1/register.
type RegisterRequest struct {
	// Name is the machine name: the CommonName of its certificate.
	Name string `json:"name"`
	// PassphraseProof is RegisterProof(passphrase, Name, Nonce, CSR).
	PassphraseProof string `json:"passphrase_proof"`
	// Nonce is 32 random bytes, in lowercase hex.
	Nonce string `json:"nonce"`
	// CSR is a PEM "CERTIFICATE REQUEST" signed with the agent's key.
	CSR string `json:"csr"`
}

// RegisterResponse is the answer to a successful registration.
type RegisterResponse struct {
	// Certificate is the machine's client certificate, PEM.
	Certificate string `json:"certificate"`
	// CA is the certificate of the server's CA, PEM.
	CA string `json:"ca"`
	// ProcessServer is the host:port of the process server to replicate to.
	ProcessServer string `json:"process_server"`
	// ServerProof is ServerProof(passphrase, Nonce, CA).
	ServerProof string `json:"server_proof"`
}

// DiskSpec is one protected disk, as an agent declares it.
type DiskSpec struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// MachineRequest is the body of PUT /v1/machine.
type MachineRequest struct {
	Disks []DiskSpec `json:"disks"`
}

// DiskState is the replication state of one disk (GET
// /v1/disks/{disk}/state, and each disk of a Machine).
type DiskState struct {
	// Disk is the disk's name.
	Disk string `json:"disk"`
	// Size is the size the agent declared, 0 if unknown.
	Size int64 `json:"size"`
	// NextSeq is the first sequence number the server has not made
	// durable: the next segment to send. 0 for a new disk.
	NextSeq uint64 `json:"next_seq"`
	// AppliedSeq is the last sequence number applied to target storage;
	// meaningful only when Applied.
	AppliedSeq uint64 `json:"applied_seq"`
	// Applied reports whether any segment has been applied.
	Applied bool `json:"applied"`
}

// SegmentAck is the answer 200 to a segment upload.
type SegmentAck struct {
	// Acked is the sequence number now durable on the server.
	Acked uint64 `json:"acked"`
	// Duplicate is true when the segment had already been received: the
	// server ignored this copy.
	Duplicate bool `json:"duplicate,omitempty"`
}

// PointStatus is the answer to GET /v1/points/{id}.
type PointStatus struct {
	ID string `json:"id"`
	// Durable: the cut is in an acknowledged segment of every disk of
	// the machine.
	Durable bool `json:"durable"`
	// Listed: target storage lists the point (every byte it needs is
	// applied); it can be failed over to.
	Listed bool `json:"listed"`
}

// Point is a recovery point.
type Point struct {
	ID string `json:"id"`
	// Time is the instant of the cut (RFC 3339, UTC, nanoseconds).
	Time time.Time `json:"time"`
	// Kind is "crash", "app" or "group".
	Kind string `json:"kind"`
	// Gen is the tracker generation the cut closed.
	Gen uint64 `json:"gen"`
	// Disks names the disks the point covers.
	Disks []string `json:"disks"`
}

// Machine is one protected machine as the admin API lists it.
type Machine struct {
	Name string `json:"name"`
	// Registered is when the machine last registered; null if it never
	// did on this server (data restored from elsewhere).
	Registered *time.Time `json:"registered"`
	// LastSeen is the last request of the machine to the process role
	// since the server started, or null.
	LastSeen *time.Time `json:"last_seen"`
	// Disks is the state of each disk, sorted by name.
	Disks []DiskState `json:"disks"`
	// Points counts the listed recovery points.
	Points int `json:"points"`
	// LatestPoint is the newest listed point, or null.
	LatestPoint *Point `json:"latest_point"`
}

// Point selectors a FailoverRequest accepts besides a point id.
const (
	PointLatest    = "latest"
	PointLatestApp = "latest-app"
)

// FailoverRequest is the body of POST /v1/machines/{m}/failover.
type FailoverRequest struct {
	// Point is a point id, PointLatest or PointLatestApp.
	Point string `json:"point"`
	// Test marks a test failover: replication goes on untouched.
	Test bool `json:"test"`
	// Out is an absolute directory on the server host; each disk is
	// written to Out/<disk>.img.
	Out string `json:"out"`
}

// Image is one materialized disk.
type Image struct {
	Disk string `json:"disk"`
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// FailoverResult is the answer to a failover.
type FailoverResult struct {
	Machine string  `json:"machine"`
	Point   Point   `json:"point"`
	Test    bool    `json:"test"`
	Images  []Image `json:"images"`
}

// Limits of GET /v1/disks/{disk}/hashes: the answer holds at most
// MaxHashesBytes (one 32-byte SHA-256 per block).
const (
	MaxHashesBytes = 32 << 20
	MaxHashBlocks  = MaxHashesBytes / 32
)
