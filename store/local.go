package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Names of the files of a Local directory (see the package documentation).
const (
	storeFile   = "store.json"
	lockFile    = "lock"
	machinesDir = "machines"
	disksFile   = "disks.json"
	disksDir    = "disks"
	currentImg  = "current.img"
	baseImg     = "base.img"
	journalDir  = "journal"
	cutsFile    = "cuts.json"
	appliedFile = "applied"
	baseSeqFile = "base_seq"
)

// localFormat and localVersion identify the layout in store.json.
const (
	localFormat  = "lifeboat-local"
	localVersion = 1
)

// ErrInvalidName is wrapped by errors about a machine or disk name that
// CheckName rejects.
var ErrInvalidName = errors.New("invalid name")

// CheckName checks a machine or disk name: 1 to 63 bytes of
// [A-Za-z0-9._-], and neither "." nor "..". Such a name is safe as a path
// element. The error wraps ErrInvalidName.
func CheckName(name string) error {
	if len(name) < 1 || len(name) > 63 {
		return fmt.Errorf("name %q: %d bytes, want 1 to 63: %w", name, len(name), ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: character %q not in [A-Za-z0-9._-]: %w", name, c, ErrInvalidName)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("name %q: %w", name, ErrInvalidName)
	}
	return nil
}

// Local is the local-directory backend of Store, the embedded default: one
// directory of sparse image files, journal segments and small JSON files
// (see the package documentation for the layout and its rules). Its
// methods are safe for concurrent use; one process at a time may open a
// directory.
type Local struct {
	dir  string
	lock *os.File

	mu     sync.Mutex
	disks  map[string]*diskLocks  // by machine/disk
	prunes map[string]*sync.Mutex // by machine: one Prune at a time

	// hook, when set (by tests), is called at the named stages of Apply
	// and Prune; an error it returns stops the call there, as a crash
	// would.
	hook func(stage string) error
	// readHook, when set (by tests), is called for every read
	// Materialize makes from a journal segment: n bytes at off of
	// segment seq of disk.
	readHook func(disk string, seq uint64, off int64, n int)

	// reflink is whether the store's file system shares extents
	// (ProbeReflink at open): Materialize may then start an image from a
	// clone of the replica (see materializeDisk).
	reflink bool
	// rewind, when set (by tests and benchmarks), overrides how
	// Materialize chooses between replaying from the base and rewinding
	// the replica; pathHook, when set, is told which one each image took.
	rewind   rewindMode
	pathHook func(disk string, rewound bool)
}

// diskLocks are the locks of one disk.
type diskLocks struct {
	// apply is held by Apply: one segment at a time per disk.
	apply sync.Mutex
	// tidied: the first Apply of this process removed the temporary
	// files a crash left (removeTemps); under apply. Later ones need
	// not list the journal directory again, which grows with every
	// segment retained.
	tidied bool
	// cur guards current.img: Apply writes it under the write lock,
	// Hashes reads it and Materialize clones it under the read lock.
	// Whatever writes current.img writes only records of journal
	// segments already in the journal directory, so that Materialize can
	// tell from those segments which bytes changed after a cut.
	cur sync.RWMutex
	// journal guards base.img, the base_seq marker and the set of
	// retained segments: Materialize reads them under the read lock;
	// Prune folds a segment into base.img, moves the marker and deletes
	// the segment under the write lock. Apply only adds segments, which
	// no reader uses before they are applied.
	journal sync.RWMutex
}

var _ Store = (*Local)(nil)

// storeMeta is the content of store.json.
type storeMeta struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// OpenLocal opens the store in dir, creating it when dir does not exist or
// is empty. It refuses a non-empty directory that is not a store, a store
// of an unknown version, and a directory another process (or another
// Local) holds open. Close releases it.
func OpenLocal(dir string) (*Local, error) { return openLocal(dir, false) }

// OpenLocalShared opens the store in dir like OpenLocal, but with a shared
// lock: several processes (the process servers of a scale-out deployment,
// on a shared file system) may hold it at once, while OpenLocal stays
// refused. The store's own locks work within one process only: the
// callers must make sure that one process at a time writes a machine (the
// configuration server assigns each machine to one process server) and
// must exclude Prune from Materialize across processes themselves
// (server/scaleout_store.go does both).
func OpenLocalShared(dir string) (*Local, error) { return openLocal(dir, true) }

func openLocal(dir string, shared bool) (*Local, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := mkdirAllSync(dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	fresh := false
	b, err := os.ReadFile(filepath.Join(dir, storeFile))
	switch {
	case err == nil:
		var m storeMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("open store: %s: %w", storeFile, err)
		}
		if m.Format != localFormat || m.Version != localVersion {
			return nil, fmt.Errorf("open store: %s is a %q store of version %d, this one reads %q version %d",
				dir, m.Format, m.Version, localFormat, localVersion)
		}
	case errors.Is(err, fs.ErrNotExist):
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		for _, e := range ents {
			// A lock file alone is what an interrupted OpenLocal leaves.
			if e.Name() == lockFile || strings.HasPrefix(e.Name(), "."+storeFile+".tmp-") {
				continue
			}
			return nil, fmt.Errorf("open store: %s is not empty and has no %s: not a store", dir, storeFile)
		}
		fresh = true
	default:
		return nil, fmt.Errorf("open store: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile), shared)
	if err != nil {
		return nil, err
	}
	l := &Local{dir: dir, lock: lock, disks: make(map[string]*diskLocks), prunes: make(map[string]*sync.Mutex)}
	if shared {
		// Another process (a scale-out process server) may be applying
		// to current.img: its writes are not ordered by this process's
		// disk locks, so a clone of the replica could catch one half
		// done. Replay from the base and the immutable journal instead.
		l.rewind = rewindNever
	}
	if fresh {
		b, _ := json.Marshal(storeMeta{Format: localFormat, Version: localVersion})
		if err := writeFileAtomic(dir, storeFile, append(b, '\n')); err != nil {
			lock.Close()
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	if err := mkdirAllSync(filepath.Join(dir, machinesDir)); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	// A failed probe counts as no reflink: Materialize then replays from
	// the base, which works everywhere.
	l.reflink, _ = ProbeReflink(dir)
	return l, nil
}

// Reflink reports whether the store's file system shares extents between
// files (ProbeReflink when the store was opened). Without it, every image
// Materialize makes starts with a full copy of the base's data, so
// failover costs time in proportion to the disk's data, not to the
// changes: put the store on XFS made with reflink=1, or on btrfs.
func (l *Local) Reflink() bool { return l.reflink }

// Dir returns the store's directory, absolute.
func (l *Local) Dir() string { return l.dir }

// Close releases the directory. The Local must not be used afterwards.
func (l *Local) Close() error {
	if l.lock == nil {
		return nil
	}
	err := l.lock.Close()
	l.lock = nil
	return err
}

func (l *Local) machineDir(machine string) string {
	return filepath.Join(l.dir, machinesDir, machine)
}

func (l *Local) diskDir(machine, disk string) string {
	return filepath.Join(l.dir, machinesDir, machine, disksDir, disk)
}

// locks returns the locks of a disk.
func (l *Local) locks(machine, disk string) *diskLocks {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := machine + "/" + disk
	d := l.disks[k]
	if d == nil {
		d = new(diskLocks)
		l.disks[k] = d
	}
	return d
}

// pruneLock returns the mutex that serializes Prune calls of a machine.
func (l *Local) pruneLock(machine string) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.prunes[machine]
	if m == nil {
		m = new(sync.Mutex)
		l.prunes[machine] = m
	}
	return m
}

func (l *Local) runHook(stage string) error {
	if l.hook == nil {
		return nil
	}
	return l.hook(stage)
}

// checkMachine checks a machine name and that the store knows the machine.
func (l *Local) checkMachine(machine string) error {
	if err := CheckName(machine); err != nil {
		return fmt.Errorf("machine: %w", err)
	}
	if _, err := os.Stat(l.machineDir(machine)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("machine %s: %w", machine, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("machine %s: %w", machine, err)
	}
	return nil
}

// disksMeta is the content of disks.json.
type disksMeta struct {
	Version int        `json:"version"`
	Disks   []DiskInfo `json:"disks"`
}

// SetDisks records the disk set of a machine: a point is listed once its
// cut is durable on each of these disks. Names must pass CheckName and be
// distinct; sizes are informational until the first segment of a disk is
// applied. An empty set lists no point.
func (l *Local) SetDisks(ctx context.Context, machine string, disks []DiskInfo) error {
	if err := CheckName(machine); err != nil {
		return fmt.Errorf("set disks: machine: %w", err)
	}
	m := disksMeta{Version: 1, Disks: make([]DiskInfo, 0, len(disks))}
	for _, d := range disks {
		if err := CheckName(d.Name); err != nil {
			return fmt.Errorf("set disks: disk: %w", err)
		}
		if d.Size < 0 {
			return fmt.Errorf("set disks: disk %s: negative size %d", d.Name, d.Size)
		}
		m.Disks = append(m.Disks, DiskInfo{Name: d.Name, Size: d.Size})
	}
	slices.SortFunc(m.Disks, func(a, b DiskInfo) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(m.Disks); i++ {
		if m.Disks[i].Name == m.Disks[i-1].Name {
			return fmt.Errorf("set disks: disk %s listed twice", m.Disks[i].Name)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	dir := l.machineDir(machine)
	if err := mkdirAllSync(dir); err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	if err := writeFileAtomic(dir, disksFile, append(b, '\n')); err != nil {
		return fmt.Errorf("set disks: %w", err)
	}
	return nil
}

// readDisksMeta reads disks.json of a machine; ok is false when SetDisks
// was never called.
func (l *Local) readDisksMeta(machine string) (m disksMeta, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(l.machineDir(machine), disksFile))
	if errors.Is(err, fs.ErrNotExist) {
		return disksMeta{}, false, nil
	}
	if err != nil {
		return disksMeta{}, false, fmt.Errorf("read %s: %w", disksFile, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return disksMeta{}, false, fmt.Errorf("read %s of %s: %w", disksFile, machine, err)
	}
	return m, true, nil
}

// storedDisks lists the disks of a machine that have a directory: the
// disks of which a segment has been (at least partly) applied.
func (l *Local) storedDisks(machine string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(l.machineDir(machine), disksDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && CheckName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// diskSet returns the disk set of a machine, sorted: that of SetDisks, or
// the disks that have a journal (at least one applied segment).
func (l *Local) diskSet(machine string) ([]string, error) {
	m, ok, err := l.readDisksMeta(machine)
	if err != nil {
		return nil, err
	}
	if !ok {
		stored, err := l.storedDisks(machine)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, d := range stored {
			if _, err := os.Stat(filepath.Join(l.diskDir(machine, d), appliedFile)); err == nil {
				names = append(names, d)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("list disks: %w", err)
			}
		}
		return names, nil
	}
	names := make([]string, len(m.Disks))
	for i, d := range m.Disks {
		if err := CheckName(d.Name); err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", disksFile, machine, err)
		}
		names[i] = d.Name
	}
	slices.Sort(names)
	return names, nil
}

// appliedState is the content of the applied marker of a disk.
type appliedState struct {
	// Seq is the last segment applied.
	Seq uint64 `json:"seq"`
	// Size is the disk's size after it: the largest of its headers'.
	Size int64 `json:"size"`
	// Time is when it was applied.
	Time time.Time `json:"time"`
}

// readApplied reads the applied marker of the disk in dir; ok is false
// when no segment has been applied.
func readApplied(dir string) (st appliedState, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, appliedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return appliedState{}, false, nil
	}
	if err != nil {
		return appliedState{}, false, fmt.Errorf("read applied marker: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return appliedState{}, false, fmt.Errorf("read applied marker %s: %w", dir, err)
	}
	if st.Size <= 0 {
		return appliedState{}, false, fmt.Errorf("read applied marker %s: size %d", dir, st.Size)
	}
	return st, true, nil
}

// cutEntry is one cut in a disk's journal.
type cutEntry struct {
	ID   string    `json:"id"`
	Kind string    `json:"kind"`
	Gen  uint64    `json:"gen"`
	Time time.Time `json:"time"`
	// Seq is the segment that holds the cut.
	Seq uint64 `json:"seq"`
	// Record is the index of the cut among the DATA, ZERO, CUT and NOTE
	// records of the segment (informational); Pos is the byte offset of
	// its record in the segment, which Materialize stops at.
	Record int   `json:"record"`
	Pos    int64 `json:"pos"`
	// Size is the disk's size at the cut.
	Size int64 `json:"size"`
	// Note is what the point's NOTE record says, if the journal has one.
	Note *cutNote `json:"note,omitempty"`
	// Dropped is set by Prune once retention has dropped the point: it is
	// never materializable again.
	Dropped bool `json:"dropped,omitempty"`
}

// cutNote is the content of a NOTE record.
type cutNote struct {
	Freeze time.Duration `json:"freeze_ns"`
	Text   string        `json:"text"`
}

// pendingNote is a NOTE record whose point has no cut yet in the journal:
// a writer may rotate between a NOTE and its CUT when a segment is full.
type pendingNote struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"` // the segment that holds it
	cutNote
}

// cutsMeta is the content of cuts.json.
type cutsMeta struct {
	Version int           `json:"version"`
	Cuts    []cutEntry    `json:"cuts"`
	Notes   []pendingNote `json:"notes,omitempty"`
}

// readCuts reads the cut list of the disk in dir.
func readCuts(dir string) ([]cutEntry, error) {
	m, err := readCutsMeta(dir)
	return m.Cuts, err
}

// readCutsMeta reads cuts.json of the disk in dir: its cut list and
// pending notes.
func readCutsMeta(dir string) (cutsMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, cutsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return cutsMeta{Version: 1}, nil
	}
	if err != nil {
		return cutsMeta{}, fmt.Errorf("read cut list: %w", err)
	}
	var m cutsMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return cutsMeta{}, fmt.Errorf("read cut list %s: %w", dir, err)
	}
	return m, nil
}

// writeCutsMeta replaces cuts.json of the disk in dir, durably.
func writeCutsMeta(dir string, m cutsMeta) error {
	m.Version = 1
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, cutsFile, append(b, '\n'))
}

// baseState is the content of the base_seq marker of a disk.
type baseState struct {
	// LastMerged is the last segment folded into base.img.
	LastMerged uint64 `json:"last_merged"`
}

// readBaseSeq returns the first segment of the journal of the disk in dir
// that base.img does not hold: 0 when nothing was ever merged, else the
// segment after the last merged one.
func readBaseSeq(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, baseSeqFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read base marker: %w", err)
	}
	var st baseState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("read base marker %s: %w", dir, err)
	}
	if st.LastMerged == 1<<64-1 {
		return 0, fmt.Errorf("read base marker %s: last merged segment %d", dir, st.LastMerged)
	}
	return st.LastMerged + 1, nil
}

// appliedCuts returns the cuts of the disk in dir that are in applied
// segments, in journal order, the first of each point id only.
func appliedCuts(dir string) ([]cutEntry, error) {
	st, ok, err := readApplied(dir)
	if err != nil || !ok {
		return nil, err
	}
	all, err := readCuts(dir)
	if err != nil {
		return nil, err
	}
	return AppliedCuts(all, st.Seq), nil
}

// Disks returns the disks of a machine that SetDisks named or that have
// stored data, sorted by name. Size is the disk's size in the last applied
// segment, or the size SetDisks gave before any.
func (l *Local) Disks(ctx context.Context, machine string) ([]DiskInfo, error) {
	if err := l.checkMachine(machine); err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	m, _, err := l.readDisksMeta(machine)
	if err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	byName := make(map[string]DiskInfo)
	for _, d := range m.Disks {
		byName[d.Name] = d
	}
	stored, err := l.storedDisks(machine)
	if err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	for _, name := range stored {
		if _, ok := byName[name]; !ok {
			byName[name] = DiskInfo{Name: name}
		}
	}
	out := make([]DiskInfo, 0, len(byName))
	for name, d := range byName {
		st, ok, err := readApplied(l.diskDir(machine, name))
		if err != nil {
			return nil, fmt.Errorf("disks: %w", err)
		}
		if ok {
			d.Size, d.AppliedSeq, d.Applied = st.Size, st.Seq, true
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DiskInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Machines lists the machines the store holds anything of, sorted.
func (l *Local) Machines(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(l.dir, machinesDir))
	if err != nil {
		return nil, fmt.Errorf("machines: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && CheckName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Points lists the points of a machine whose cut is in an applied segment
// of every disk of its disk set, oldest first.
func (l *Local) Points(ctx context.Context, machine string) ([]Point, error) {
	if err := l.checkMachine(machine); err != nil {
		return nil, fmt.Errorf("points: %w", err)
	}
	pts, _, err := l.points(machine)
	if err != nil {
		return nil, fmt.Errorf("points: %w", err)
	}
	return pts, nil
}

// points returns the listed points of a machine and, for each disk, the
// cut of each listed point. A point is materializable unless Prune marked
// its cut dropped on some disk, or the cut lies in a segment already
// merged into that disk's base (which only a cut never listed before can).
// Its note comes from the first disk by name that has one.
func (l *Local) points(machine string) ([]Point, map[string]map[string]cutEntry, error) {
	disks, err := l.diskSet(machine)
	if err != nil || len(disks) == 0 {
		return nil, nil, err
	}
	journals := make(map[string]DiskJournal, len(disks))
	for _, d := range disks {
		dir := l.diskDir(machine, d)
		var j DiskJournal
		if j.Cuts, err = appliedCuts(dir); err != nil {
			return nil, nil, err
		}
		if j.BaseSeq, err = readBaseSeq(dir); err != nil {
			return nil, nil, err
		}
		journals[d] = j
	}
	pts, listed := ListPoints(disks, journals)
	return pts, listed, nil
}
