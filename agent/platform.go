package agent

import (
	"errors"
	"os"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// Tracker is what the agent needs of a change tracker (docs/ARCHITECTURE.md
// §3): tracker.Tracker, plus the acknowledgement of a gap once its resync
// is scheduled, and whether Open adopted a tracker that ran while the
// agent was stopped. *tracker.Linux implements it; unit tests drive the
// agent with a fake.
type Tracker interface {
	tracker.Tracker
	// AckGap clears the gap Gap reports for path: the resync that makes
	// up for it has been scheduled.
	AckGap(path string)
	// Adopted reports whether the tracker was found running (pinned) at
	// Open, so nothing was missed since the last stop.
	Adopted() bool
}

// platform is what the agent needs of the operating system to protect
// disks: platform_linux.go on Linux; elsewhere every method fails with
// ErrNotSupported until that system's tracker exists (the Windows one is
// issue 14). Unit tests bring a fake.
type platform interface {
	// checkDisk refuses a device the tracker cannot protect.
	checkDisk(path string) error
	// checkStateDir refuses a state directory on a protected disk: the
	// agent's own writes would replicate themselves.
	checkStateDir(dir string, disks []string) error
	// openTracker opens the tracker, adopting the one pinned in pinDir
	// if it runs.
	openTracker(pinDir, stateFile string) (Tracker, error)
	// openDisk opens a protected disk to read what reached the device.
	openDisk(path string) (*blockDev, error)
	// keepDirtySetOnly makes the tracker keep only the dirty set of a
	// disk (on: the spool is full) or report its extents again.
	keepDirtySetOnly(tr Tracker, path string, on bool) error
	// kernelRelease and bootID identify the running kernel ("" when
	// unknown); a new boot id means a reboot, hence a tracking gap.
	kernelRelease() string
	bootID() string
}

// freezer makes the filesystems on the protected disks consistent for an
// app-consistent or group point (app.go): platform_linux.go with syncfs
// and FIFREEZE; unit tests bring a fake.
type freezer interface {
	// filesystems returns the mount points of the filesystems on disks.
	filesystems(disks []string) ([]string, error)
	// syncFS flushes them without freezing, so the freeze has little
	// left to write.
	syncFS(mnts []string)
	// freeze freezes them all or none; thaw undoes it.
	freeze(mnts []string) (thaw func() error, err error)
	// expediteRCU shortens the freeze where the kernel allows it and
	// returns what undoes that (nil: nothing was changed).
	expediteRCU(log warner) func()
}

// warner is the part of a logger that reports what went wrong but goes on.
type warner interface{ Warn(msg string, args ...any) }

// ErrNotSupported is wrapped by the errors of what this operating system
// cannot do yet.
var ErrNotSupported = errors.New("not supported on this operating system")

// blockDev reads a protected disk bypassing any cache (O_DIRECT on
// Linux), so what it reads is what reached the device, never a page cache
// that may be ahead of it.
type blockDev struct {
	f     *os.File
	path  string
	size  int64
	align int64 // offsets and lengths of reads are multiples of it
}

// maxRead is the largest read of the agent (copy.go reads with it).
const maxRead = 1 << 20

// alignRange widens [off, off+n) to the read alignment, clipped to the
// device.
func (b *blockDev) alignRange(off, n int64) (int64, int64) {
	start := off / b.align * b.align
	end := min((off+n+b.align-1)/b.align*b.align, b.size)
	return start, max(0, end-start)
}

func (b *blockDev) close() error {
	return b.f.Close()
}
