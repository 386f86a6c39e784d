package api

import (
	"context"
	"errors"
	"time"
)

// Integrity of what a machine sends (docs/security.md, docs/protocol.md).

// CodeSegmentConflict is the Code of a 409 answer to a segment upload
// under a sequence number the server has already accepted with other
// content: the replica may hold data the agent did not send.
const CodeSegmentConflict = "segment-conflict"

// ErrSegmentConflict: a segment differs from the one the server accepted
// under its sequence number (409 with code "segment-conflict"). It is a
// divergence, never a success: the agent resyncs the disk.
var ErrSegmentConflict = errors.New("segment conflicts with the one accepted")

// HeaderAgentSession names the agent process that sends a request to the
// process role: a random id each agent process draws at start (the
// client sets it on every request). Asking a disk's state
// (GET PathDiskState) with it fences the disk: a segment upload of
// another session that is not yet durable is refused (409, code
// CodeSuperseded). An agent killed with an upload in flight restarts and
// asks where the journal stands: without the fence the dead process's
// last segment could still become durable after that answer, under the
// sequence number the new process then uses for other content, which is
// a conflict and a needless resync.
const HeaderAgentSession = "Lifeboat-Agent-Session"

// CodeSuperseded is the Code of a 409 answer to a segment upload of an
// agent session that another session of the machine superseded by asking
// the disk's state since (HeaderAgentSession).
const CodeSuperseded = "superseded"

// ErrSuperseded: the upload came from an agent process another process of
// the machine superseded (409 with code "superseded"). Not a divergence:
// nothing was accepted; the process that asked last goes on.
var ErrSuperseded = errors.New("upload of a superseded agent process")

// Alert kinds of integrity and security (Alert.Alert).
const (
	// AlertSegmentConflict: a machine sent a segment that differs from
	// the one accepted under its sequence number; the message names the
	// disk and the sequence number.
	AlertSegmentConflict = "segment-conflict"
	// AlertRegistrationBurst: many failed registration attempts came
	// from one source address.
	AlertRegistrationBurst = "registration-burst"
)

// SpoolRefusedConflict is the SpoolStatus.Refused of a segment the process
// server refused as a conflict (ErrSegmentConflict).
const SpoolRefusedConflict = "conflict"

// AgentProblemDiverged: the process server holds another segment under a
// sequence number of a disk; the agent resyncs the disk.
const AgentProblemDiverged = "diverged"

// ErrRateLimited: too many failed attempts from this address; retry after
// the answer's Retry-After (429).
var ErrRateLimited = errors.New("too many failed attempts")

// Paths of the admin API for machine identities (docs/protocol.md).
const (
	// PathReregister allows a machine's name to be registered again.
	PathReregister = "/v1/machines/{m}/reregister"
	// PathRevoke revokes every certificate of a machine.
	PathRevoke = "/v1/machines/{m}/revoke"
)

// ReregisterWindow is how long an operator's approval to register a
// machine's name again lasts.
const ReregisterWindow = 24 * time.Hour

// ReregisterAnswer is the answer to POST PathReregister.
type ReregisterAnswer struct {
	Machine string    `json:"machine"`
	Until   time.Time `json:"until"`
}

// RevokeAnswer is the answer to POST PathRevoke.
type RevokeAnswer struct {
	Machine string    `json:"machine"`
	Serials []string  `json:"serials"`
	Revoked time.Time `json:"revoked"`
}

// PathRenew is where a machine renews its certificate, authenticated by
// the certificate it renews (configuration role, docs/security.md).
const PathRenew = "/v1/renew"

// RenewRequest is the body of POST PathRenew: a CSR for the new key.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse is the answer: the new certificate (PEM). The one that
// renewed is revoked.
type RenewResponse struct {
	Certificate string `json:"certificate"`
}

// HeaderSegmentBase, on a segment upload, is the lowest sequence number
// the agent still holds unacknowledged: it sends several segments of a
// disk at once (pipelined), all from that number on. A segment above the
// server's next_seq is then received at once and made durable in turn,
// once every segment before it is, as long as the base is at most
// next_seq (the agent will send the missing ones); without the header, or
// with a base above next_seq (the agent no longer has them), a segment
// above next_seq is a gap answered at once, as before.
const HeaderSegmentBase = "Lifeboat-Segment-Base"

// MaxSegmentsAhead bounds how far past next_seq a pipelined segment may
// be: the agent keeps at most this many segments of a disk in flight.
const MaxSegmentsAhead = 16

type segmentBaseKey struct{}

// WithSegmentBase returns ctx carrying the base of a pipelined upload:
// the client sends it as HeaderSegmentBase.
func WithSegmentBase(ctx context.Context, base uint64) context.Context {
	return context.WithValue(ctx, segmentBaseKey{}, base)
}

// SegmentBase returns the base WithSegmentBase put in ctx.
func SegmentBase(ctx context.Context) (uint64, bool) {
	b, ok := ctx.Value(segmentBaseKey{}).(uint64)
	return b, ok
}
