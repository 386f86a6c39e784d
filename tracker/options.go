package tracker

// Mode is how a disk's changes travel from the kernel.
type Mode uint32

const (
	// ModeMetadata sends every extent through the queue rings (default).
	ModeMetadata Mode = 0
	// ModeBitmap only marks the dirty bitmap; extents come out at cuts, one
	// region per dirty granule run. The fallback under pressure.
	ModeBitmap Mode = 1
)

func (m Mode) String() string {
	if m == ModeBitmap {
		return "bitmap"
	}
	return "metadata"
}

// Default sizes of the tracker's rings (Options).
const (
	// DefaultRingBufferSize is the ring buffer's size with
	// CompletionEvents: a record per write completes through it.
	DefaultRingBufferSize = 8 << 20
	// SmallRingBufferSize is the ring buffer's size without
	// CompletionEvents (the agent's case): only cut markers use it.
	SmallRingBufferSize = 64 << 10
	// DefaultQueueRingSize is what the per-CPU queue rings share: on 2
	// CPUs 16 Ki records each, millions of writes a second between two
	// polls of the reader.
	DefaultQueueRingSize = 2 << 20
)

// Options configure a Linux tracker.
type Options struct {
	// PinDir is a directory on a bpffs mount. When set, programs, links and
	// maps are pinned there, and a new process opening the same directory
	// continues tracking with no gap. When empty, tracking ends on Close.
	PinDir string
	// RingBufferSize in bytes (a power of two, a multiple of the page size):
	// the size of the ring buffer of completion events and cut markers.
	// Default: DefaultRingBufferSize with CompletionEvents, else
	// SmallRingBufferSize, which is enough for the cut markers (a Cut
	// waits for its marker to be read, so at most two are ever unread; a
	// marker that finds the ring full waits for room). The reader maps the
	// ring twice and every page of it counts in the process's memory, all
	// of it at once: 8 MiB of ring are 16 MiB of the agent's RSS.
	RingBufferSize int
	// QueueRingSize is the bytes that the per-CPU rings of queue events
	// share (each CPU gets a power of two of 48-byte records, at least
	// 16); a write that finds its CPU's ring full is marked in the dirty
	// bitmap instead (DiskStats.Drops). Default: a quarter of
	// RingBufferSize when that is given, else DefaultQueueRingSize.
	QueueRingSize int
	// BitmapGranularity in bytes (power of two, >= 4 KiB). Default 64 KiB.
	BitmapGranularity int64
	// BitmapWords is the size of the dirty bitmap shared by all disks, in
	// 64-bit words. Each disk needs 2*ceil(size/granularity/64). Default
	// 1<<18 words (2 MiB), enough for 1 TiB of disks at 64 KiB.
	BitmapWords int
	// StateFile, when set, records the boot id and the protected disks so
	// that a gap across a reboot or a lost pin directory is detected.
	StateFile string
	// EventBuffer is how many events may wait for the consumer, in
	// batches of up to MaxBatch. Default 4096.
	EventBuffer int
	// CompletionEvents sends an EventCompleted for every request when it
	// completes. Off, only queue events, cut markers and dirty regions
	// come, and Completed tells when a generation's requests are done;
	// each completion event costs a ring-buffer record per write. A
	// process that adopts pins sets the flag its own way.
	CompletionEvents bool
	// InflightSlots is the size of the direct-mapped table in which the
	// kernel program follows each write until it completes (a power of
	// two, 2 to 1<<20; default 1<<15). A write whose slot is taken is
	// followed in a hash map instead, which costs more per write:
	// Stats.InFlightSpilled counts them. A process that adopts pins uses
	// the pinned table's size.
	InflightSlots int
	// DiskSlots is the size of the direct-mapped table in which the
	// kernel program finds a protected disk by its device number (a power
	// of two, 1 to 1024; default 256). A disk whose slot another disk
	// holds is found in a hash map instead, which costs more per write.
	// A process that adopts pins uses the pinned table's size.
	DiskSlots int
}
