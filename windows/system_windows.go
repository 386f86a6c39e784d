package windows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/windows"
)

// Windows is the System of a Windows host: volumes found through the
// volume manager, the live volumes' USN journals, VSS snapshot sets.
type Windows struct {
	// JournalSize is the USN journal's maximum size when the tracker
	// creates one (default 512 MiB).
	JournalSize uint64
}

var _ System = Windows{}

// Volumes lists the volumes with an extent on disk (\\.\PhysicalDriveN).
func (w Windows) Volumes(disk string) ([]VolumeInfo, error) {
	num, err := diskNumber(disk)
	if err != nil {
		return nil, err
	}
	buf := make([]uint16, windows.MAX_PATH)
	h, err := windows.FindFirstVolume(&buf[0], uint32(len(buf)))
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	defer windows.FindVolumeClose(h)
	var out []VolumeInfo
	for {
		name := windows.UTF16ToString(buf) // \\?\Volume{GUID}\
		if vi, ok, err := volumeOn(name, num); err != nil {
			return nil, err
		} else if ok {
			out = append(out, vi)
		}
		if err := windows.FindNextVolume(h, &buf[0], uint32(len(buf))); err != nil {
			if errors.Is(err, windows.ERROR_NO_MORE_FILES) {
				return out, nil
			}
			return nil, fmt.Errorf("list volumes: %w", err)
		}
	}
}

func diskNumber(disk string) (uint32, error) {
	const prefix = `\\.\PhysicalDrive`
	if !strings.HasPrefix(strings.ToLower(disk), strings.ToLower(prefix)) {
		return 0, fmt.Errorf("%s is not a disk: name it \\\\.\\PhysicalDriveN (Get-Disk shows N)", disk)
	}
	n, err := strconv.ParseUint(disk[len(prefix):], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", disk, err)
	}
	return uint32(n), nil
}

// volumeOn says where volume lies if it has a single extent on disk num.
// A volume spanning disks (dynamic disks) cannot be protected disk by disk.
func volumeOn(name string, num uint32) (VolumeInfo, bool, error) {
	v, err := openVolume(strings.TrimSuffix(name, `\`))
	if err != nil {
		return VolumeInfo{}, false, nil // e.g. a CD drive with no medium
	}
	defer v.Close()
	out := make([]byte, 8+24*8) // VOLUME_DISK_EXTENTS
	n, err := ioctl(v.h, ioctlVolumeGetDiskExtents, nil, out)
	if err != nil {
		return VolumeInfo{}, false, nil
	}
	exts, err := ParseDiskExtents(out[:n])
	if err != nil {
		return VolumeInfo{}, false, err
	}
	var vi VolumeInfo
	found := false
	for _, e := range exts {
		if e.Disk != num {
			continue
		}
		if len(exts) > 1 {
			return VolumeInfo{}, false, fmt.Errorf("volume %s spans several extents or disks: not supported", name)
		}
		found = true
		vi = VolumeInfo{Name: name, Layout: Layout{Offset: e.Offset, Size: e.Length}}
	}
	if !found {
		return VolumeInfo{}, false, nil
	}
	fs := make([]uint16, windows.MAX_PATH)
	p, _ := windows.UTF16PtrFromString(name)
	if err := windows.GetVolumeInformation(p, nil, 0, nil, nil, nil, &fs[0], uint32(len(fs))); err != nil {
		return VolumeInfo{}, false, fmt.Errorf("volume %s: %w", name, err)
	}
	vi.FS = windows.UTF16ToString(fs)
	if vi.FS == "NTFS" {
		d, err := v.NTFSData()
		if err != nil {
			return VolumeInfo{}, false, err
		}
		vi.Layout.ClusterSize = d.BytesPerCluster
	}
	return vi, true, nil
}

// liveJournal is the USN journal of a live volume.
type liveJournal struct{ v *volumeHandle }

func (j liveJournal) Query() (JournalInfo, error) { return j.v.QueryJournal() }
func (j liveJournal) Read(id uint64, from, to int64) ([]Record, error) {
	return j.v.ReadJournal(id, from, to)
}

// Journal opens a volume's journal, creating it and turning range
// tracking on if needed.
func (w Windows) Journal(volume string) (Journal, error) {
	v, err := openVolume(strings.TrimSuffix(volume, `\`))
	if err != nil {
		return nil, err
	}
	size := w.JournalSize
	if size == 0 {
		size = 512 << 20
	}
	if err := v.EnsureJournal(size, size/8); err != nil {
		v.Close()
		return nil, err
	}
	return liveJournal{v}, nil
}

// Snapshot makes a VSS snapshot set.
func (w Windows) Snapshot(ctx context.Context, volumes []string, app bool) (SnapshotSet, error) {
	return vssSnapshot(ctx, volumes, app)
}
