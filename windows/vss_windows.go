package windows

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// VSS through COM from Go, without cgo: IVssBackupComponents is a COM
// object whose methods are called through its vtable (vsbackup.h gives
// the order; IUnknown's three come first).
const (
	vssInitializeForBackup  = 5
	vssSetBackupState       = 6
	vssGatherWriterMetadata = 9
	vssPrepareForBackup     = 14
	vssBackupComplete       = 27
	vssSetContext           = 35
	vssStartSnapshotSet     = 36
	vssAddToSnapshotSet     = 37
	vssDoSnapshotSet        = 38
	vssDeleteSnapshots      = 39
	vssGetSnapshotProps     = 42

	asyncWait        = 4 // IVssAsync::Wait
	asyncQueryStatus = 5 // IVssAsync::QueryStatus

	iunknownRelease = 2

	// VSS_SNAPSHOT_CONTEXT: with writers (app-consistent), or a
	// non-persistent snapshot no writer takes part in (crash-consistent).
	vssCtxBackup          = 0x0
	vssCtxFileShareBackup = 0x10
	vssBtCopy             = 5 // VSS_BACKUP_TYPE: leaves writers' log chains alone
	vssObjectSnapshotSet  = 3 // VSS_OBJECT_TYPE
	vssSAsyncFinished     = 0x0004230a

	coinitMultithreaded      = 0x0
	rpcCAuthnLevelPktPrivacy = 6
	rpcCImpLevelIdentify     = 2
	eoacDynamicCloaking      = 0x40
	rpcETooLate              = 0x80010119
)

var (
	modVssapi                = windows.NewLazySystemDLL("vssapi.dll")
	procCreateVssBackupComps = modVssapi.NewProc("CreateVssBackupComponentsInternal")
	procVssFreeSnapshotProps = modVssapi.NewProc("VssFreeSnapshotPropertiesInternal")
	modOle32                 = windows.NewLazySystemDLL("ole32.dll")
	procCoInitializeEx       = modOle32.NewProc("CoInitializeEx")
	procCoInitializeSecurity = modOle32.NewProc("CoInitializeSecurity")
	securityOnce             sync.Once
)

// vssSnapshotProp is VSS_SNAPSHOT_PROP (vss.h), in its natural 64-bit
// layout.
type vssSnapshotProp struct {
	SnapshotID      windows.GUID
	SnapshotSetID   windows.GUID
	SnapshotsCount  int32
	DeviceObject    *uint16
	OriginalVolume  *uint16
	OriginatingMach *uint16
	ServiceMachine  *uint16
	ExposedName     *uint16
	ExposedPath     *uint16
	ProviderID      windows.GUID
	Attributes      int32
	CreationTime    int64
	Status          int32
}

type comObject struct{ p unsafe.Pointer }

func (o comObject) call(method int, args ...uintptr) error {
	vtbl := *(*unsafe.Pointer)(o.p)
	fn := *(*uintptr)(unsafe.Add(vtbl, uintptr(method)*unsafe.Sizeof(uintptr(0))))
	r, _, _ := syscall.SyscallN(fn, append([]uintptr{uintptr(o.p)}, args...)...)
	if int32(r) < 0 {
		return fmt.Errorf("HRESULT %#08x", uint32(r))
	}
	return nil
}

func (o comObject) release() {
	if o.p != nil {
		o.call(iunknownRelease)
	}
}

// wait waits for an IVssAsync and releases it.
func wait(async unsafe.Pointer, what string) error {
	a := comObject{async}
	defer a.release()
	if err := a.call(asyncWait, uintptr(windows.INFINITE)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var hr int32
	if err := a.call(asyncQueryStatus, uintptr(unsafe.Pointer(&hr)), 0); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if hr != vssSAsyncFinished {
		return fmt.Errorf("%s: status %#08x", what, uint32(hr))
	}
	return nil
}

// vssSet is a snapshot set made by IVssBackupComponents.
type vssSet struct {
	comp    comObject
	setID   windows.GUID
	app     bool
	devices map[string]string // volume name -> snapshot device
	opened  map[string]*shadowVolume
}

// vssSnapshot makes one snapshot set of volumes (\\?\Volume{GUID}\).
func vssSnapshot(ctx context.Context, volumes []string, app bool) (_ *vssSet, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r, _, _ := procCoInitializeEx.Call(0, coinitMultithreaded); int32(r) < 0 {
		return nil, fmt.Errorf("CoInitializeEx: %#08x", uint32(r))
	}
	securityOnce.Do(func() {
		// writers call the requester back; -1: default authentication services
		r, _, _ := procCoInitializeSecurity.Call(0, ^uintptr(0), 0, 0, rpcCAuthnLevelPktPrivacy,
			rpcCImpLevelIdentify, 0, eoacDynamicCloaking, 0)
		_ = r // RPC_E_TOO_LATE: someone set it already
	})
	if err := procCreateVssBackupComps.Find(); err != nil {
		return nil, fmt.Errorf("VSS is not available: %w", err)
	}
	var p unsafe.Pointer
	if r, _, _ := procCreateVssBackupComps.Call(uintptr(unsafe.Pointer(&p))); int32(r) < 0 {
		return nil, fmt.Errorf("CreateVssBackupComponents: %#08x (run as an administrator)", uint32(r))
	}
	s := &vssSet{comp: comObject{p}, app: app, devices: map[string]string{}, opened: map[string]*shadowVolume{}}
	defer func() {
		if err != nil {
			s.comp.release()
		}
	}()
	if err := s.comp.call(vssInitializeForBackup, 0); err != nil {
		return nil, fmt.Errorf("InitializeForBackup: %w", err)
	}
	vctx := uintptr(vssCtxFileShareBackup)
	if app {
		vctx = vssCtxBackup
	}
	if err := s.comp.call(vssSetContext, vctx); err != nil {
		return nil, fmt.Errorf("SetContext: %w", err)
	}
	if app {
		if err := s.comp.call(vssSetBackupState, 0, 0, vssBtCopy, 0); err != nil {
			return nil, fmt.Errorf("SetBackupState: %w", err)
		}
		var async unsafe.Pointer
		if err := s.comp.call(vssGatherWriterMetadata, uintptr(unsafe.Pointer(&async))); err != nil {
			return nil, fmt.Errorf("GatherWriterMetadata: %w", err)
		}
		if err := wait(async, "GatherWriterMetadata"); err != nil {
			return nil, err
		}
	}
	if err := s.comp.call(vssStartSnapshotSet, uintptr(unsafe.Pointer(&s.setID))); err != nil {
		return nil, fmt.Errorf("StartSnapshotSet: %w", err)
	}
	ids := map[string]windows.GUID{}
	for _, v := range volumes {
		name, err := windows.UTF16PtrFromString(v)
		if err != nil {
			return nil, err
		}
		var id, provider windows.GUID
		if err := s.comp.call(vssAddToSnapshotSet, uintptr(unsafe.Pointer(name)),
			uintptr(unsafe.Pointer(&provider)), uintptr(unsafe.Pointer(&id))); err != nil {
			return nil, fmt.Errorf("AddToSnapshotSet %s: %w", v, err)
		}
		ids[v] = id
	}
	if app {
		var async unsafe.Pointer
		if err := s.comp.call(vssPrepareForBackup, uintptr(unsafe.Pointer(&async))); err != nil {
			return nil, fmt.Errorf("PrepareForBackup: %w", err)
		}
		if err := wait(async, "PrepareForBackup"); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var async unsafe.Pointer
	if err := s.comp.call(vssDoSnapshotSet, uintptr(unsafe.Pointer(&async))); err != nil {
		return nil, fmt.Errorf("DoSnapshotSet: %w", err)
	}
	if err := wait(async, "DoSnapshotSet"); err != nil {
		return nil, err
	}
	for v, id := range ids {
		var prop vssSnapshotProp
		if err := s.comp.call(vssGetSnapshotProps, uintptr(unsafe.Pointer(&id)), uintptr(unsafe.Pointer(&prop))); err != nil {
			return nil, fmt.Errorf("GetSnapshotProperties %s: %w", v, err)
		}
		s.devices[v] = windows.UTF16PtrToString(prop.DeviceObject)
		procVssFreeSnapshotProps.Call(uintptr(unsafe.Pointer(&prop)))
	}
	return s, nil
}

// Volume opens the snapshot of a volume of the set.
func (s *vssSet) Volume(name string) (Snapshot, error) {
	if sv := s.opened[name]; sv != nil {
		return sv, nil
	}
	dev, ok := s.devices[name]
	if !ok {
		return nil, fmt.Errorf("volume %s is not in the snapshot set", name)
	}
	sv, err := openShadow(dev)
	if err != nil {
		return nil, err
	}
	s.opened[name] = sv
	return sv, nil
}

// Release closes the snapshot devices and deletes the set.
func (s *vssSet) Release() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	procCoInitializeEx.Call(0, coinitMultithreaded)
	for _, sv := range s.opened {
		sv.Close()
	}
	var err error
	if s.app {
		var async unsafe.Pointer
		if err = s.comp.call(vssBackupComplete, uintptr(unsafe.Pointer(&async))); err == nil {
			err = wait(async, "BackupComplete")
		}
	}
	var deleted int32
	var bad windows.GUID
	if derr := s.comp.call(vssDeleteSnapshots, uintptr(unsafe.Pointer(&s.setID)), vssObjectSnapshotSet, 1,
		uintptr(unsafe.Pointer(&deleted)), uintptr(unsafe.Pointer(&bad))); derr != nil && err == nil {
		err = fmt.Errorf("DeleteSnapshots: %w", derr)
	}
	s.comp.release()
	return err
}
