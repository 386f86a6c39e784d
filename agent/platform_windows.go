package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"

	lbwin "github.com/lifeboat-dr/lifeboat/windows"
)

// win is the platform and freezer of Windows (docs/windows.md): the
// user-space tracker of package windows (VSS snapshot sets, the USN
// journal), reads of a cut from its snapshot, and VSS writers in place of
// FIFREEZE. Nothing of it has run on a Windows host in this project's CI.
type win struct{}

func defaultPlatform() platform { return win{} }
func defaultFreezer() freezer   { return win{} }

// current is the tracker the agent opened: blockDev.readAt reads a cut
// through it, from the snapshot, never from the live volume.
var current struct {
	sync.Mutex
	tr *lbwin.Tracker
}

func (win) checkDisk(path string) error {
	_, err := lbwin.Windows{}.Volumes(path)
	if err != nil {
		return &ConfigError{Err: err, Remedy: `name a whole disk as \\.\PhysicalDriveN (Get-Disk lists them)`}
	}
	return nil
}

// checkStateDir refuses a state directory on a volume of a protected
// disk: the agent's own writes would replicate themselves.
func (win) checkStateDir(dir string, disks []string) error {
	vol, err := volumeOf(dir)
	if err != nil {
		return nil // cannot tell: nothing to refuse
	}
	for _, d := range disks {
		vols, err := lbwin.Windows{}.Volumes(d)
		if err != nil {
			continue
		}
		for _, v := range vols {
			if strings.EqualFold(v.Name, vol) {
				return &ConfigError{Err: fmt.Errorf("state directory %s is on %s, a volume of the protected disk %s", dir, vol, d),
					Remedy: "put the state directory on a disk that is not protected (the spool's writes would replicate themselves)"}
			}
		}
	}
	return nil
}

// volumeOf is the volume (\\?\Volume{GUID}\) that holds path.
func volumeOf(path string) (string, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	mnt := make([]uint16, windows.MAX_PATH)
	if err := windows.GetVolumePathName(p, &mnt[0], uint32(len(mnt))); err != nil {
		return "", err
	}
	name := make([]uint16, windows.MAX_PATH)
	if err := windows.GetVolumeNameForVolumeMountPoint(&mnt[0], &name[0], uint32(len(name))); err != nil {
		return "", err
	}
	return windows.UTF16ToString(name), nil
}

func (win) openTracker(_, stateFile string) (Tracker, error) {
	tr, err := lbwin.Open(lbwin.Windows{}, lbwin.Options{StateFile: stateFile})
	if err != nil {
		return nil, err
	}
	current.Lock()
	current.tr = tr
	current.Unlock()
	return tr, nil
}

// ioctlDiskGetLengthInfo is IOCTL_DISK_GET_LENGTH_INFO (winioctl.h).
const ioctlDiskGetLengthInfo = 0x0007405c

func (win) openDisk(path string) (*blockDev, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var size int64
	var n uint32
	if err := windows.DeviceIoControl(windows.Handle(f.Fd()), ioctlDiskGetLengthInfo, nil, 0,
		(*byte)(unsafe.Pointer(&size)), 8, &n, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	return &blockDev{f: f, path: path, size: size, align: 4096}, nil
}

func (win) keepDirtySetOnly(Tracker, string, bool) error { return nil }
func (win) kernelRelease() string                        { return "" }
func (win) bootID() string                               { return "" }

// filesystems: on Windows the "filesystems" of a freeze are the disks
// themselves; VSS finds their volumes and writers.
func (win) filesystems(disks []string) ([]string, error) { return disks, nil }
func (win) syncFS([]string)                              {}

// freeze makes the next cuts app-consistent: the VSS writers hold their
// applications for the snapshot the cut makes, and thaw ends that.
func (win) freeze([]string) (func() error, error) {
	current.Lock()
	tr := current.tr
	current.Unlock()
	if tr == nil {
		return nil, errors.New("app-consistent point: no tracker")
	}
	tr.AppConsistent(true)
	return func() error { tr.AppConsistent(false); return nil }, nil
}
func (win) expediteRCU(warner) func() { return nil }

// monotonicNow is the clock of the tracker's event times, in ns.
func monotonicNow() int64 { return int64(lbwin.MonotonicNow()) }

// readAt reads a cut from the snapshot of the volume that holds the
// range. The ranges outside every NTFS volume (partition table, gaps) are
// in no snapshot and no cut tracks them: they are read from the disk,
// which only an initial sync, a resync and the sweep's limits cover.
func (b *blockDev) readAt(p []byte, off int64) (int, error) {
	current.Lock()
	tr := current.tr
	current.Unlock()
	var k int
	var err error
	if tr != nil {
		k, err = tr.ReadAt(b.path, p, off, b.f)
	} else {
		k, err = b.f.ReadAt(p, off)
	}
	if errors.Is(err, io.EOF) && k > 0 {
		err = nil
	}
	return k, err
}

// newReadBuf returns a buffer of n bytes for reads.
func newReadBuf(n int) ([]byte, error) { return make([]byte, n), nil }
func dropReadBuf([]byte)               {}
func freeReadBuf([]byte)               {}
