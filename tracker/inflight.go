package tracker

// InFlightWrite is a write the kernel program counts as queued and not
// yet completed (an entry of its in-flight tables, bpf/tracker.bpf.c).
type InFlightWrite struct {
	Dev     string `json:"dev"` // major:minor of the whole disk
	Sector  uint64 `json:"sector"`
	Bytes   uint32 `json:"bytes"`
	Op      uint32 `json:"op"`
	Gen     uint64 `json:"gen"`
	Pending uint32 `json:"pending"` // pieces not yet completed (roots)
	Split   bool   `json:"split"`   // a piece split off a root
	Spilled bool   `json:"spilled"` // in the overflow hash map
	Key     uint64 `json:"key"`     // the bio's address
	ID      uint64 `json:"id"`      // the request id the program gave it

	dev  uint32 // kernel encoding (0 for a split piece: its root's)
	root uint64 // a split piece's root (its key)
}
