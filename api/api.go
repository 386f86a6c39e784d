package api

import (
	"fmt"
	"time"
	"unicode/utf8"
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
	// PathProbe accepts and discards a body to measure the link (process
	// role; agentctl assess).
	PathProbe = "/v1/probe"
	// PathMachines lists the machines (admin).
	PathMachines = "/v1/machines"
	// PathPoints lists a machine's recovery points (admin).
	PathPoints = "/v1/machines/{m}/points"
	// PathFailover materializes a machine's disks (admin).
	PathFailover = "/v1/machines/{m}/failover"
	// PathCommit ends the protection of a failed-over machine (admin).
	PathCommit = "/v1/machines/{m}/commit"
	// PathPolicy is a machine's retention policy (admin).
	PathPolicy = "/v1/machines/{m}/policy"
	// PathPrune applies a machine's retention policy now (admin).
	PathPrune = "/v1/machines/{m}/prune"
	// PathPlans lists and creates recovery plans (admin).
	PathPlans = "/v1/plans"
	// PathPlan is one recovery plan (admin).
	PathPlan = "/v1/plans/{name}"
	// PathPlanTest runs a plan's test failover (admin).
	PathPlanTest = "/v1/plans/{name}/test"
	// PathPlanRun runs a plan's real failover (admin).
	PathPlanRun = "/v1/plans/{name}/run"
	// PathAlerts lists the active and recently cleared alerts (admin).
	PathAlerts = "/v1/alerts"
	// PathServer describes the server: roles, target storage (admin).
	PathServer = "/v1/server"
)

// ServerInfo is the answer to GET /v1/server.
type ServerInfo struct {
	// Roles run by this server.
	Roles []string `json:"roles"`
	// StoreReflink says whether the file system of the local target
	// storage shares extents between files (reflink); null when the
	// target storage is not a local directory. Without it, every
	// failover image starts with a full copy of the replica base's data.
	StoreReflink *bool `json:"store_reflink"`
	// StoreNote is a warning about the target storage with its remedy,
	// or "" when there is none.
	StoreNote string `json:"store_note,omitempty"`
}

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
	for i, c := range s { // by rune, so that the error shows 'é', not 'Ã'
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		if c == utf8.RuneError {
			return fmt.Errorf("name %q: byte %#02x at %d is not UTF-8 (letters, digits, '.', '_', '-')", s, s[i], i)
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
	// Code, when set, names the condition for programs: CodeMoving.
	Code string `json:"code,omitempty"`
}

// CodeMoving is the Code of a 503 answer to a machine that is being moved
// to another process server (errors.Is(err, ErrMoving) on the client).
const CodeMoving = "moving"

// RegisterRequest is the body of POST /v1/register.
type RegisterRequest struct {
	// Name is the machine name: the CommonName of its certificate.
	Name string `json:"name"`
	// PassphraseProof is RegisterProof(passphrase, Name, Nonce, CSR);
	// with TokenID, RegisterProof(the token's secret, Name, Nonce, CSR).
	PassphraseProof string `json:"passphrase_proof"`
	// TokenID, if set, names the one-time registration token whose
	// secret keys both proofs in place of the passphrase.
	TokenID string `json:"token_id,omitempty"`
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
	// ServerProof is ServerProof(passphrase, Nonce, CA), or
	// ServerProof(the token's secret, Nonce, CA) for a token registration.
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
	// FreezeNS is how long the filesystems were frozen for an
	// app-consistent point, in nanoseconds; 0 otherwise.
	FreezeNS int64 `json:"freeze_ns"`
	// FreezeSeconds is FreezeNS in seconds.
	FreezeSeconds float64 `json:"freeze_seconds"`
	// Materializable is false once retention merged the point into the
	// replica base: it is listed as history but cannot be failed over to.
	Materializable bool `json:"materializable"`
	// Note is the text of the point's note (JSON by convention: the
	// scripts the agent ran and their exit status, the filesystems
	// frozen); "" if none.
	Note string `json:"note"`
}

// Machine states (Machine.State).
const (
	// StateProtected: replication runs; the normal state.
	StateProtected = "protected"
	// StateFailedOver: a real failover materialized the machine's disks;
	// replication of the old source still runs until commit.
	StateFailedOver = "failed-over"
	// StateCommitted: the failover was committed; the process role
	// refuses the old source's segments (410), the replica stays
	// readable.
	StateCommitted = "committed"
)

// FailoverRecord is the last real failover of a machine.
type FailoverRecord struct {
	// Point is the point failed over to.
	Point Point `json:"point"`
	// Time is when the failover finished.
	Time time.Time `json:"time"`
	// Out is the directory (on the server host) the images were written to.
	Out string `json:"out"`
	// Images are the materialized disks.
	Images []Image `json:"images"`
}

// PruneStatus is the outcome of the last prune of a machine.
type PruneStatus struct {
	// Time is when the prune ran.
	Time time.Time `json:"time"`
	// Error is why it failed, "" when it succeeded.
	Error string `json:"error"`
	// Result is what it did (zero when it failed).
	Result PruneResult `json:"result"`
}

// PruneResult says what applying a retention policy did.
type PruneResult struct {
	// MergedSegments is the number of journal segments folded into the
	// replica base.
	MergedSegments int `json:"merged_segments"`
	// MergedBytes is the size of those segments.
	MergedBytes int64 `json:"merged_bytes"`
	// DroppedPoints are the points no longer materializable after it.
	DroppedPoints []string `json:"dropped_points"`
}

// PruneAnswer is the answer to POST /v1/machines/{m}/prune.
type PruneAnswer struct {
	Machine string      `json:"machine"`
	Policy  Policy      `json:"policy"`
	Time    time.Time   `json:"time"`
	Result  PruneResult `json:"result"`
}

// Policy is a machine's retention policy, in whole seconds.
type Policy struct {
	// Machine is the machine's name (in answers).
	Machine string `json:"machine,omitempty"`
	// WindowSeconds: every point younger than this stays materializable.
	WindowSeconds int64 `json:"window_seconds"`
	// KeepAllSeconds: every point of this recent span is kept.
	KeepAllSeconds int64 `json:"keep_all_seconds"`
	// ThinSeconds: older points within the window are thinned to one
	// per this span.
	ThinSeconds int64 `json:"thin_seconds"`
	// Default is true when the machine has no policy of its own set.
	Default bool `json:"default"`
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
	// State is StateProtected, StateFailedOver, StateCommitted,
	// StateFailingBack or StateFailedBack.
	State string `json:"state"`
	// Failover is the last real failover (while failed over or
	// committed), or null.
	Failover *FailoverRecord `json:"failover"`
	// Committed is when the failover was committed, or null.
	Committed *time.Time `json:"committed"`
	// LastPrune is the outcome of the last prune since the server
	// started, or null.
	LastPrune *PruneStatus `json:"last_prune"`
	// Failback is the running failback session, or the last one (done,
	// failed or canceled), or null.
	Failback *FailbackStatus `json:"failback"`
	// Problems are short descriptions of what needs the operator's
	// attention (a failing prune, a failing apply); empty when none.
	Problems []string `json:"problems"`
	// Alerts are the machine's active alerts; empty when none.
	Alerts []Alert `json:"alerts"`
	// ProcessServer is the id of the process server the machine is
	// assigned to, and ProcessAddress where its agent replicates.
	ProcessServer  string `json:"process_server"`
	ProcessAddress string `json:"process_address"`
}

// Alert kinds (Alert.Alert).
const (
	// AlertRPO: the newest recovery point of a machine is older than
	// the RPO threshold.
	AlertRPO = "rpo-breached"
	// AlertHeartbeat: the machine's agent has not contacted the process
	// server for longer than the heartbeat threshold.
	AlertHeartbeat = "heartbeat-lost"
	// AlertResync: a disk of the machine is being resynchronised, or
	// its replica is out of step and needs a resync.
	AlertResync = "resync"
	// AlertCacheLow: the free space of the server's data directory (its
	// cache of segments) is under the threshold.
	AlertCacheLow = "cache-space-low"
)

// Alert severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is a condition that needs the operator's attention, raised and
// cleared by the server.
type Alert struct {
	// Alert is the kind: AlertRPO, AlertHeartbeat, AlertResync or
	// AlertCacheLow.
	Alert string `json:"alert"`
	// Machine is the machine concerned; "" for a server-wide alert.
	Machine string `json:"machine"`
	// Disk is the disk concerned, or "".
	Disk string `json:"disk,omitempty"`
	// Severity is SeverityWarning or SeverityCritical.
	Severity string `json:"severity"`
	// Message says what is wrong, with the numbers.
	Message string `json:"message"`
	// Remedy is what to do about it, in one line.
	Remedy string `json:"remedy"`
	// Since is when the alert was raised.
	Since time.Time `json:"since"`
	// Cleared is when the alert was cleared; null while active.
	Cleared *time.Time `json:"cleared"`
}

// Alerts is the answer to GET /v1/alerts.
type Alerts struct {
	// Evaluated is when the conditions were last evaluated.
	Evaluated time.Time `json:"evaluated"`
	// Active are the active alerts, by machine then kind.
	Active []Alert `json:"active"`
	// Cleared are the alerts cleared since the server started, newest
	// first (at most 100).
	Cleared []Alert `json:"cleared"`
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
	// Check checks the filesystems of every image read-only once
	// materialized.
	Check bool `json:"check"`
	// ToBlob, instead of Out, names a container of the blob store's
	// account: each disk becomes a new fixed-VHD page blob in it
	// (<machine>/<point>/<disk>.vhd), its URL in Image.URL.
	ToBlob string `json:"to_blob,omitempty"`
}

// Image is one materialized disk.
type Image struct {
	Disk string `json:"disk"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	// URL is the page blob of a failover --to-blob (Path is then "").
	URL string `json:"url,omitempty"`
}

// FailoverResult is the answer to a failover.
type FailoverResult struct {
	Machine string  `json:"machine"`
	Point   Point   `json:"point"`
	Test    bool    `json:"test"`
	Images  []Image `json:"images"`
	// Checks are the filesystem checks, when asked for (else empty).
	Checks []FSCheck `json:"checks"`
	// CheckOK is false when a requested check found a problem; true
	// otherwise.
	CheckOK bool `json:"check_ok"`
	// State is the machine's state after the failover.
	State string `json:"state"`
	// DurationSeconds is how long the failover took (materialize and
	// check).
	DurationSeconds float64 `json:"duration_seconds"`
}

// FSCheck is the read-only check of one filesystem of an image.
type FSCheck struct {
	// Disk and Image name the image checked.
	Disk  string `json:"disk"`
	Image string `json:"image"`
	// Partition is the partition number, 0 for a whole-disk filesystem.
	Partition int `json:"partition"`
	// Offset and Size locate the filesystem in the image, in bytes.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// Type is the filesystem type found ("ext4", "xfs", ...), "" if none.
	Type string `json:"type"`
	// Tool is the checker run ("e2fsck -fn", "xfs_repair -n"), "" if none.
	Tool string `json:"tool"`
	// ExitStatus is the checker's exit status, -1 if it did not run.
	ExitStatus int `json:"exit_status"`
	// Result is "clean", "errors", "failed", "unsupported", "unknown" or
	// "unrecognized" (docs/server.md).
	Result string `json:"result"`
	// OK is false for "errors", "failed" and "unrecognized".
	OK bool `json:"ok"`
	// Summary is the checker's most telling line, or why none ran.
	Summary string `json:"summary"`
	// Output is the end of the checker's output (at most 4 KiB).
	Output string `json:"output"`
	// DurationSeconds is how long the check took.
	DurationSeconds float64 `json:"duration_seconds"`
}

// Plan is a recovery plan: ordered groups of machines failed over one
// group after the other, with scripts between groups.
type Plan struct {
	Name string `json:"name"`
	// Groups are the machines of each group, in order.
	Groups [][]string `json:"groups"`
	// Scripts run on the server host after their group.
	Scripts []PlanScript `json:"scripts"`
	// ScriptTimeoutSeconds bounds each script.
	ScriptTimeoutSeconds int64 `json:"script_timeout_seconds"`
	// Created is when the plan was created or last replaced.
	Created time.Time `json:"created"`
}

// PlanScript is a script of a plan.
type PlanScript struct {
	// AfterGroup is the 1-based group after which the script runs.
	AfterGroup int `json:"after_group"`
	// Path is an absolute path of an executable on the server host.
	Path string `json:"path"`
}

// PlanRequest is the body of POST /v1/plans/{name}/test and .../run.
type PlanRequest struct {
	// Out is an absolute directory on the server host; each machine's
	// disks go to Out/<machine>/<disk>.img.
	Out string `json:"out"`
	// Point is PointLatest (default) or PointLatestApp.
	Point string `json:"point"`
	// Check checks the filesystems of every image.
	Check bool `json:"check"`
}

// PlanResult is the answer to a plan's test or run.
type PlanResult struct {
	Plan string `json:"plan"`
	Test bool   `json:"test"`
	Out  string `json:"out"`
	// Point is the selector used for every machine.
	Point    string    `json:"point"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// OK is true when every group and script succeeded.
	OK bool `json:"ok"`
	// Stopped says where a failed plan stopped, or is null.
	Stopped *PlanStop `json:"stopped"`
	// Groups are the groups run, in order (a group not reached is not
	// listed).
	Groups []PlanGroupResult `json:"groups"`
}

// PlanStop is where and why a plan stopped.
type PlanStop struct {
	// Group is the 1-based group that failed or after which a script
	// failed.
	Group int `json:"group"`
	// Machine is the machine that failed, or "".
	Machine string `json:"machine"`
	// Script is the script that failed, or "".
	Script string `json:"script"`
	// Error says what went wrong.
	Error string `json:"error"`
	// Hint says what to do about it, when the server knows.
	Hint string `json:"hint,omitempty"`
}

// PlanGroupResult is one group of a plan's run.
type PlanGroupResult struct {
	Group    int                 `json:"group"`
	Machines []PlanMachineResult `json:"machines"`
	Scripts  []PlanScriptResult  `json:"scripts"`
}

// PlanMachineResult is the failover of one machine of a plan.
type PlanMachineResult struct {
	Machine string `json:"machine"`
	// OK is false when the failover (or its check) failed.
	OK bool `json:"ok"`
	// Error says why it failed, "" if it did not.
	Error string `json:"error"`
	// Hint says what to do about Error, when the server knows.
	Hint string `json:"hint,omitempty"`
	// Failover is the failover's result; null when it failed before
	// materializing.
	Failover *FailoverResult `json:"failover"`
	// DurationSeconds is how long the machine's failover took.
	DurationSeconds float64 `json:"duration_seconds"`
}

// PlanScriptResult is one script run of a plan.
type PlanScriptResult struct {
	Path string `json:"path"`
	// ExitStatus of the script; -1 when it could not start or was killed.
	ExitStatus int `json:"exit_status"`
	// TimedOut is true when the script was killed at the timeout.
	TimedOut bool `json:"timed_out"`
	// Error says why the script failed, "" when it exited 0.
	Error string `json:"error"`
	// Hint says what to do about Error, when the server knows.
	Hint string `json:"hint,omitempty"`
	// Output is the end of its output (stdout and stderr, 4 KiB at most).
	Output string `json:"output"`
	// Started and DurationSeconds time the script.
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Limits of GET /v1/disks/{disk}/hashes: the answer holds at most
// MaxHashesBytes (one 32-byte SHA-256 per block).
const (
	MaxHashesBytes = 32 << 20
	MaxHashBlocks  = MaxHashesBytes / 32
)

// ProbeResult answers a link probe: what the process server read and how
// long reading it took on its side.
type ProbeResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// MaxProbeBytes bounds one link probe.
const MaxProbeBytes = 1 << 30
