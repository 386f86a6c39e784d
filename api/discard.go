package api

import "time"

// Discarding a poisoned segment: one the process server acknowledged but
// cannot apply, for ever (an apply failure of the segment itself). The
// segment and every later one of the disk not yet applied are dropped; the
// agent is refused its next upload as a conflict (CodeSegmentConflict) and
// resyncs the disk from the last applied segment on (docs/server.md).

const (
	// PathDiscard discards the first segment not applied of a machine's
	// disk (admin API, configuration role).
	PathDiscard = "/v1/machines/{m}/disks/{disk}/discard"
	// PathProcessDiscard is the same on a joined process server's port,
	// from the configuration server only.
	PathProcessDiscard = "/v1/discard/{m}/{disk}"
)

// DiscardRequest is the body of POST PathDiscard.
type DiscardRequest struct {
	// Seq is the segment to discard: the one whose apply fails (the
	// apply-failing problem names it). It must be the first not applied.
	Seq uint64 `json:"seq"`
}

// DiscardResult answers a discard.
type DiscardResult struct {
	Machine string `json:"machine"`
	Disk    string `json:"disk"`
	// Seq is the segment discarded; Count how many segments were dropped
	// with it (it and those after it, acknowledged and not applied).
	Seq   uint64 `json:"seq"`
	Count uint64 `json:"count"`
	// NextSeq is where the disk's journal continues: the agent resyncs
	// the disk and sends it from there.
	NextSeq uint64 `json:"next_seq"`
	// ProcessServer is the id of the process server that held them.
	ProcessServer string    `json:"process_server"`
	Time          time.Time `json:"time"`
}

// DiskProblemDiscarded is the kind of a DiskProblem of a disk whose
// segments were discarded and whose agent has not begun its resync yet.
const DiskProblemDiscarded = "discarded"
