package windows

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// shadowVolume is a Snapshot over a VSS snapshot device
// (\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopyN): the layout and the
// data of a cut are read here, never on the live volume.
type shadowVolume struct {
	dev  string // the snapshot device, without a trailing backslash
	vol  *volumeHandle
	data *os.File
}

var _ Snapshot = (*shadowVolume)(nil)

// openShadow opens a snapshot device for a cut.
func openShadow(dev string) (*shadowVolume, error) {
	v, err := openVolume(dev)
	if err != nil {
		return nil, err
	}
	return &shadowVolume{dev: dev, vol: v, data: os.NewFile(uintptr(v.h), dev)}, nil
}

// ReadAt reads the snapshot (offsets and lengths sector aligned).
func (s *shadowVolume) ReadAt(p []byte, off int64) (int, error) { return s.data.ReadAt(p, off) }

func (s *shadowVolume) Bitmap() (*Bitmap, error) { return s.vol.Bitmap() }

func (s *shadowVolume) FileRuns(ref FileRef, stream string) ([]Run, error) {
	h, err := s.vol.openByID(ref)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(h)
	if stream == "" {
		return retrievalPointers(h)
	}
	// A named stream or attribute: open it by the file's path in the
	// snapshot.
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n, err := windows.GetFinalPathNameByHandle(h, &buf[0], uint32(len(buf)), volumeNameNone)
	if err != nil {
		return nil, fmt.Errorf("path of file %v: %w", ref, err)
	}
	name := s.dev + windows.UTF16ToString(buf[:n]) + ":" + stream + ":$INDEX_ALLOCATION"
	return s.pathRuns(name)
}

func (s *shadowVolume) pathRuns(name string) ([]Run, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateFile(p, windows.FILE_READ_ATTRIBUTES,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND) {
		return nil, fmt.Errorf("%s: %w", name, ErrFileGone)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer windows.CloseHandle(h)
	return retrievalPointers(h)
}

// metadataFiles are NTFS's own files whose clusters are hashed at every
// cut: they change without USN records of their own.
var metadataFiles = []string{
	`\$MFT`, `\$MFTMirr`, `\$LogFile`, `\$Volume`, `\$AttrDef`, `\$Bitmap`, `\$Boot`,
	`\$Secure:$SDS`, `\$UpCase`, `\$Extend\$UsnJrnl:$J`, `\$Extend\$ObjId:$O:$INDEX_ALLOCATION`,
	`\$Extend\$Reparse:$R:$INDEX_ALLOCATION`, `\$Extend\$Quota:$Q:$INDEX_ALLOCATION`,
	`\$Secure:$SDH:$INDEX_ALLOCATION`, `\$Secure:$SII:$INDEX_ALLOCATION`,
	`\:$I30:$INDEX_ALLOCATION`,
}

func (s *shadowVolume) MetadataRuns() ([]Run, error) {
	var all []Run
	for _, f := range metadataFiles {
		runs, err := s.pathRuns(s.dev + f)
		if errors.Is(err, ErrFileGone) {
			continue // not every volume has every one
		}
		if err != nil {
			return nil, err
		}
		all = append(all, runs...)
	}
	return all, nil
}

func (s *shadowVolume) Close() error { return s.vol.Close() }

// volumeNameNone asks GetFinalPathNameByHandle for the path without the
// volume (fileapi.h VOLUME_NAME_NONE).
const volumeNameNone = 0x4
