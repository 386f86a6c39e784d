package agent

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// linux is the platform and freezer of Linux: the eBPF tracker, O_DIRECT
// reads of block devices, syncfs and FIFREEZE.
type linux struct{}

func defaultPlatform() platform { return linux{} }
func defaultFreezer() freezer   { return linux{} }

func (linux) checkDisk(path string) error { return tracker.CheckDevice(path) }

func (linux) openTracker(pinDir, stateFile string) (Tracker, error) {
	tr, err := tracker.Open(tracker.Options{PinDir: pinDir, StateFile: stateFile})
	if err != nil {
		return nil, err
	}
	return tr, nil
}

func (linux) openDisk(path string) (*blockDev, error) { return openBlockDev(path) }

func (linux) keepDirtySetOnly(tr Tracker, path string, on bool) error {
	t, ok := tr.(*tracker.Linux)
	if !ok {
		return nil
	}
	mode := tracker.ModeMetadata
	if on {
		mode = tracker.ModeBitmap
	}
	return t.SetMode(path, mode)
}

func (linux) checkStateDir(dir string, disks []string) error {
	fsDisk, err := filesystemDisk(dir)
	if err != nil {
		return nil // cannot tell (e.g. tmpfs, overlay): nothing to refuse
	}
	for _, d := range disks {
		pd, err := wholeDiskOf(d)
		if err == nil && pd == fsDisk {
			return &ConfigError{Err: fmt.Errorf("state directory %s is on %s, a protected disk", dir, d),
				Remedy: "put --state on a disk that is not protected (the spool's writes would replicate themselves)"}
		}
	}
	return nil
}

// kernelRelease is uname -r.
func (linux) kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// bootID is the kernel's boot id, as the tracker reads it to detect a
// reboot ("" if unreadable).
func (linux) bootID() string {
	id, _ := tracker.BootID()
	return id
}

// filesystems returns the mount points of the filesystems on the whole
// disks of the protected devices.
func (linux) filesystems(disks []string) ([]string, error) {
	nums := map[string]bool{}
	for _, d := range disks {
		if n, err := wholeDiskOf(d); err == nil {
			nums[n] = true
		}
	}
	return fsutil.MountsOn(nums)
}

// syncFS flushes each filesystem without freezing it, so that the freeze
// that follows has little left to write.
func (linux) syncFS(mnts []string) {
	for _, m := range mnts {
		fd, err := unix.Open(m, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		unix.Syncfs(fd)
		unix.Close(fd)
	}
}

func (linux) freeze(mnts []string) (func() error, error) {
	fz, err := fsutil.Freeze(mnts)
	if err != nil {
		return nil, err
	}
	return fz.Thaw, nil
}

// rcuExpedited is the kernel's switch that makes every RCU grace period
// expedited (IPIs instead of waiting for each CPU to pass a quiescent
// state).
const rcuExpedited = "/sys/kernel/rcu_expedited"

// expediteRCU turns expedited grace periods on, if they were off, and
// returns what turns them off again. FIFREEZE takes the superblock's
// per-CPU write locks level by level, each waiting for an RCU grace period:
// under load that is most of the freeze (measured: about 40 ms of FIFREEZE
// with a 20 MB/s writer, under 1 ms expedited). The switch is global, so it
// is held only across the freeze and left alone when someone else turned it
// on.
func (linux) expediteRCU(log warner) func() {
	b, err := os.ReadFile(rcuExpedited)
	if err != nil || strings.TrimSpace(string(b)) != "0" {
		return nil
	}
	if err := os.WriteFile(rcuExpedited, []byte("1"), 0); err != nil {
		log.Warn("cannot expedite RCU grace periods for the freeze: it will be longer", "err", err)
		return nil
	}
	return func() {
		if err := os.WriteFile(rcuExpedited, []byte("0"), 0); err != nil {
			log.Warn("could not turn expedited RCU grace periods off again", "file", rcuExpedited, "err", err)
		}
	}
}

// monotonicNow is the clock of the tracker's event times, in ns.
func monotonicNow() int64 { return int64(tracker.MonotonicNow()) }

// newReadBuf maps an aligned buffer of n bytes for O_DIRECT reads.
func newReadBuf(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}

// dropReadBuf gives the memory of a buffer back to the system; the buffer
// stays usable (it reads as zeros until written).
func dropReadBuf(b []byte) { unix.Madvise(b, unix.MADV_DONTNEED) }

// freeReadBuf unmaps a buffer of newReadBuf.
func freeReadBuf(b []byte) { unix.Munmap(b) }
