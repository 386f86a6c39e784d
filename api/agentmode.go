package api

// Modes of AgentDiskStatus.Mode: how the agent carries a disk's changes to
// its process server.
const (
	// AgentModeStream: changed blocks are read, encoded into segments in
	// memory and streamed to the server; the host writes no journal bytes.
	AgentModeStream = "stream"
	// AgentModeSpool: segments wait for the server as files of the local
	// spool (--spool-bytes > 0).
	AgentModeSpool = "spool"
	// AgentModeMetadata: the memory backlog (or the spool) is full; only
	// the changed regions are tracked and read once the server has caught
	// up. No crash-consistent point is listed meanwhile; no data is lost.
	AgentModeMetadata = "metadata"
)

// AgentProblemMetadataMode: the agent tracks changed regions only until
// the server catches up.
const AgentProblemMetadataMode = "metadata-mode"
