package windows

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The file-system controls the tracker uses (winioctl.h, CTL_CODE of
// FILE_DEVICE_FILE_SYSTEM).
const (
	fsctlGetVolumeBitmap          = 0x0009006f
	fsctlGetRetrievalPointers     = 0x00090073
	fsctlReadUSNJournal           = 0x000900bb
	fsctlCreateUSNJournal         = 0x000900e7
	fsctlQueryUSNJournal          = 0x000900f4
	fsctlUSNTrackModifiedRanges   = 0x000902f4
	fsctlGetNTFSVolumeData        = 0x00090064
	ioctlVolumeGetDiskExtents     = 0x00560000
	flagUSNTrackModifiedRangesOn  = 1
	readUSNJournalBuf             = 1 << 20
	retrievalBuf                  = 64 << 10
	bitmapChunk                   = 8 << 20
	usnReasonAll                  = 0xffffffff
	trackChunkSize                = 64 << 10
	trackFileSizeThreshold        = 1 << 20
	readUSNJournalDataV1Size      = 48
	usnTrackModifiedRangesSize    = 24
	startingVcnInputBufferSize    = 8
	startingLcnInputBufferSize    = 8
	createUSNJournalDataSize      = 16
	ntfsVolumeDataBufferMinLength = 96
)

// volumeHandle is an open volume: the live one for its journal, a VSS
// snapshot device for everything a cut reads.
type volumeHandle struct {
	h    windows.Handle
	path string
}

func openVolume(path string) (*volumeHandle, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &volumeHandle{h: h, path: path}, nil
}

func (v *volumeHandle) Close() error { return windows.CloseHandle(v.h) }

func ioctl(h windows.Handle, code uint32, in []byte, out []byte) (int, error) {
	var inp, outp *byte
	if len(in) > 0 {
		inp = &in[0]
	}
	if len(out) > 0 {
		outp = &out[0]
	}
	var n uint32
	err := windows.DeviceIoControl(h, code, inp, uint32(len(in)), outp, uint32(len(out)), &n, nil)
	return int(n), err
}

// QueryJournal is FSCTL_QUERY_USN_JOURNAL on the live volume.
func (v *volumeHandle) QueryJournal() (JournalInfo, error) {
	out := make([]byte, 80)
	n, err := ioctl(v.h, fsctlQueryUSNJournal, nil, out)
	if err != nil {
		return JournalInfo{}, fmt.Errorf("query USN journal of %s: %w", v.path, err)
	}
	return ParseJournalData(out[:n])
}

// EnsureJournal creates the journal if the volume has none and turns
// range tracking on (records V4); both are idempotent.
func (v *volumeHandle) EnsureJournal(maxSize, delta uint64) error {
	in := make([]byte, createUSNJournalDataSize)
	binary.LittleEndian.PutUint64(in, maxSize)
	binary.LittleEndian.PutUint64(in[8:], delta)
	if _, err := ioctl(v.h, fsctlCreateUSNJournal, in, nil); err != nil {
		return fmt.Errorf("create USN journal on %s: %w", v.path, err)
	}
	in = make([]byte, usnTrackModifiedRangesSize)
	binary.LittleEndian.PutUint32(in, flagUSNTrackModifiedRangesOn)
	binary.LittleEndian.PutUint64(in[8:], trackChunkSize)
	binary.LittleEndian.PutUint64(in[16:], trackFileSizeThreshold)
	out := make([]byte, 8)
	if _, err := ioctl(v.h, fsctlUSNTrackModifiedRanges, in, out); err != nil {
		return fmt.Errorf("turn USN range tracking on for %s: %w", v.path, err)
	}
	return nil
}

// ReadJournal reads the records of journal id from USN from up to (not
// including) USN to, with record versions 2 to 4.
func (v *volumeHandle) ReadJournal(id uint64, from, to int64) ([]Record, error) {
	var all []Record
	buf := make([]byte, readUSNJournalBuf)
	for from < to {
		in := make([]byte, readUSNJournalDataV1Size)
		binary.LittleEndian.PutUint64(in, uint64(from))     // StartUsn
		binary.LittleEndian.PutUint32(in[8:], usnReasonAll) // ReasonMask
		binary.LittleEndian.PutUint32(in[12:], 0)           // ReturnOnlyOnClose
		binary.LittleEndian.PutUint64(in[16:], 0)           // Timeout
		binary.LittleEndian.PutUint64(in[24:], 0)           // BytesToWaitFor
		binary.LittleEndian.PutUint64(in[32:], id)          // UsnJournalID
		binary.LittleEndian.PutUint16(in[40:], 2)           // MinMajorVersion
		binary.LittleEndian.PutUint16(in[42:], 4)           // MaxMajorVersion
		n, err := ioctl(v.h, fsctlReadUSNJournal, in, buf)
		if errors.Is(err, windows.ERROR_JOURNAL_ENTRY_DELETED) {
			return nil, ErrEntriesDeleted
		}
		if err != nil {
			return nil, fmt.Errorf("read USN journal of %s from %d: %w", v.path, from, err)
		}
		next, recs, err := ParseJournalRead(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("USN journal of %s: %w", v.path, err)
		}
		for _, r := range recs {
			if r.USN < to {
				all = append(all, r)
			}
		}
		if next <= from || len(recs) == 0 {
			break
		}
		from = next
	}
	return all, nil
}

// Bitmap is FSCTL_GET_VOLUME_BITMAP, read in chunks.
func (v *volumeHandle) Bitmap() (*Bitmap, error) {
	var whole *Bitmap
	for lcn := int64(0); ; {
		in := make([]byte, startingLcnInputBufferSize)
		binary.LittleEndian.PutUint64(in, uint64(lcn))
		out := make([]byte, 16+bitmapChunk)
		n, err := ioctl(v.h, fsctlGetVolumeBitmap, in, out)
		more := errors.Is(err, windows.ERROR_MORE_DATA)
		if err != nil && !more {
			return nil, fmt.Errorf("volume bitmap of %s: %w", v.path, err)
		}
		part, err := ParseVolumeBitmap(out[:n])
		if err != nil {
			return nil, err
		}
		got := int64(n-16) * 8
		if more {
			part.Clusters = min(part.Clusters, got)
		}
		if whole == nil {
			whole = part
		} else {
			whole.Bits = append(whole.Bits, part.Bits...)
			whole.Clusters += part.Clusters
		}
		if !more {
			return whole, nil
		}
		lcn = part.StartLCN + part.Clusters
	}
}

// retrievalPointers is FSCTL_GET_RETRIEVAL_POINTERS on an open file or
// stream, read in chunks.
func retrievalPointers(h windows.Handle) ([]Run, error) {
	var all []Run
	for vcn := int64(0); ; {
		in := make([]byte, startingVcnInputBufferSize)
		binary.LittleEndian.PutUint64(in, uint64(vcn))
		out := make([]byte, retrievalBuf)
		n, err := ioctl(h, fsctlGetRetrievalPointers, in, out)
		more := errors.Is(err, windows.ERROR_MORE_DATA)
		if errors.Is(err, windows.ERROR_HANDLE_EOF) {
			return all, nil // resident or empty: no clusters
		}
		if err != nil && !more {
			return nil, fmt.Errorf("retrieval pointers: %w", err)
		}
		runs, next, err := ParseRetrievalPointers(out[:n])
		if err != nil {
			return nil, err
		}
		all = append(all, runs...)
		if !more {
			return all, nil
		}
		vcn = next
	}
}

// NTFSVolumeData is what FSCTL_GET_NTFS_VOLUME_DATA tells.
type NTFSVolumeData struct {
	TotalClusters, BytesPerCluster int64
	MFTStartLCN, MFTValidLength    int64
}

func (v *volumeHandle) NTFSData() (NTFSVolumeData, error) {
	out := make([]byte, ntfsVolumeDataBufferMinLength)
	n, err := ioctl(v.h, fsctlGetNTFSVolumeData, nil, out)
	if err != nil {
		return NTFSVolumeData{}, fmt.Errorf("%s: %w (%s)", v.path, err, ReasonNotNTFS)
	}
	if n < ntfsVolumeDataBufferMinLength {
		return NTFSVolumeData{}, fmt.Errorf("%w: NTFS_VOLUME_DATA_BUFFER of %d bytes", ErrBadRecord, n)
	}
	le := binary.LittleEndian
	return NTFSVolumeData{
		TotalClusters:   int64(le.Uint64(out[16:])),
		BytesPerCluster: int64(le.Uint32(out[44:])),
		MFTValidLength:  int64(le.Uint64(out[56:])),
		MFTStartLCN:     int64(le.Uint64(out[64:])),
	}, nil
}

// openByID opens a file of the volume by its file reference
// (OpenFileById), with backup semantics so directories open too. stream
// "" is the file's default stream; other streams are opened by path.
func (v *volumeHandle) openByID(ref FileRef) (windows.Handle, error) {
	// FILE_ID_DESCRIPTOR: dwSize, Type (0: FileIdType, 64-bit), then the
	// id union (16 bytes).
	var desc [24]byte
	binary.LittleEndian.PutUint32(desc[0:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(desc[4:], 0)
	binary.LittleEndian.PutUint64(desc[8:], ref.Lo)
	r, _, err := procOpenFileByID.Call(uintptr(v.h), uintptr(unsafe.Pointer(&desc[0])),
		uintptr(windows.FILE_READ_ATTRIBUTES),
		uintptr(windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE),
		0, uintptr(windows.FILE_FLAG_BACKUP_SEMANTICS))
	h := windows.Handle(r)
	if h == windows.InvalidHandle {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) || errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
			return 0, fmt.Errorf("file %v: %w", ref, ErrFileGone)
		}
		return 0, fmt.Errorf("open file %v: %w", ref, err)
	}
	return h, nil
}

var procOpenFileByID = windows.NewLazySystemDLL("kernel32.dll").NewProc("OpenFileById")
