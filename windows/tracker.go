package windows

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// VolumeInfo is a volume of a protected disk.
type VolumeInfo struct {
	// Name identifies the volume (\\?\Volume{GUID}\ on Windows).
	Name   string
	Layout Layout
	// FS is the file system's name ("NTFS", "FAT32", ...).
	FS string
}

// Journal is a live volume's USN journal.
type Journal interface {
	Query() (JournalInfo, error)
	// Read returns the records of journal id with from <= USN < to; an
	// error wrapping ErrEntriesDeleted when the journal no longer has
	// them.
	Read(id uint64, from, to int64) ([]Record, error)
}

// SnapshotSet is one VSS snapshot set: a Snapshot per volume, all made at
// the same instant.
type SnapshotSet interface {
	Volume(name string) (Snapshot, error)
	Release() error
}

// System is what the tracker needs of the operating system (the VSS and
// DeviceIoControl bindings on Windows, images in the tests).
type System interface {
	// Volumes lists the volumes of a disk.
	Volumes(disk string) ([]VolumeInfo, error)
	Journal(volume string) (Journal, error)
	// Snapshot makes one snapshot set of volumes; app asks for the VSS
	// writers (an app-consistent point), otherwise none are involved.
	Snapshot(ctx context.Context, volumes []string, app bool) (SnapshotSet, error)
}

// ErrEntriesDeleted: the journal no longer holds the records asked for
// (ERROR_JOURNAL_ENTRY_DELETED).
var ErrEntriesDeleted = errors.New(ReasonEntriesDeleted)

// Options configure a Tracker.
type Options struct {
	// StateFile keeps the volumes' state between runs.
	StateFile string
	// SweepBytes is the sweep's budget per cut (default 256 MiB).
	SweepBytes int64
}

// savedState is the content of the state file.
type savedState struct {
	// Clean is set only by Close: a state found unclean at Open means
	// the agent did not stop in order, so what was cut last is unknown.
	Clean   bool
	Volumes map[string]*VolumeState
	Sweeps  map[string]*Sweep
	// Disks were protected before: a volume that is not NTFS is reported
	// as a gap once, when its disk is first protected, not at every start.
	Disks map[string]bool
}

type volume struct {
	info VolumeInfo
	jr   Journal
}

type disk struct {
	path    string
	volumes []*volume
	// untracked: volumes of the disk that are not NTFS; only an initial
	// sync or a resync copies them.
	untracked []string
	gap       string
	events    uint64
	bytes     uint64
}

// Tracker is the Windows change tracker: a tracker.Tracker whose cuts
// are VSS snapshot sets and whose changes come from the USN journal, the
// volume bitmap, hashes and the sweep (doc.go).
type Tracker struct {
	sys  System
	opts Options

	mu      sync.Mutex
	gen     uint64
	disks   map[string]*disk
	state   savedState
	adopted bool
	unclean bool
	snap    SnapshotSet
	events  chan []tracker.Event
	closed  bool
	app     bool
}

var _ tracker.Tracker = (*Tracker)(nil)

// Open starts a tracker, loading the state StateFile holds, and marks it
// unclean until Close.
func Open(sys System, opts Options) (*Tracker, error) {
	if opts.SweepBytes == 0 {
		opts.SweepBytes = 256 << 20
	}
	t := &Tracker{sys: sys, opts: opts, gen: 1, disks: map[string]*disk{},
		events: make(chan []tracker.Event, 64)}
	b, err := os.ReadFile(opts.StateFile)
	switch {
	case err == nil:
		if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&t.state); err != nil {
			return nil, fmt.Errorf("read tracker state %s: %w", opts.StateFile, err)
		}
		t.adopted, t.unclean = t.state.Clean, !t.state.Clean
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("read tracker state: %w", err)
	}
	if t.state.Volumes == nil {
		t.state.Volumes = map[string]*VolumeState{}
	}
	if t.state.Sweeps == nil {
		t.state.Sweeps = map[string]*Sweep{}
	}
	if t.state.Disks == nil {
		t.state.Disks = map[string]bool{}
	}
	t.state.Clean = false
	if err := t.save(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tracker) save() error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&t.state); err != nil {
		return fmt.Errorf("encode tracker state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(t.opts.StateFile, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write tracker state: %w", err)
	}
	return nil
}

// Protect starts tracking the NTFS volumes of a disk. A volume that is
// not NTFS, or whose journal lost records since the last cut, makes Gap
// report a resync.
func (t *Tracker) Protect(path string) error {
	vols, err := t.sys.Volumes(path)
	if err != nil {
		return &tracker.DeviceError{Path: path, Err: err, Remedy: "name a disk (\\\\.\\PhysicalDriveN) that holds NTFS volumes"}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := &disk{path: path}
	for _, vi := range vols {
		if vi.FS != "NTFS" {
			if !t.state.Disks[path] {
				d.gap = vi.Name + ": " + ReasonNotNTFS
			}
			d.untracked = append(d.untracked, vi.Name)
			continue
		}
		jr, err := t.sys.Journal(vi.Name)
		if err != nil {
			return &tracker.DeviceError{Path: path, Err: err, Remedy: "run the agent as an administrator (the USN journal needs it)"}
		}
		info, err := jr.Query()
		if err != nil {
			return &tracker.DeviceError{Path: path, Err: err, Remedy: "check that the volume is NTFS and online"}
		}
		st := t.state.Volumes[vi.Name]
		fresh := st == nil
		switch {
		case st == nil:
			// first protection: the initial sync copies everything; the
			// journal is followed from now
			if t.unclean {
				d.gap = vi.Name + ": " + ReasonNoState
			}
		case t.unclean:
			d.gap = vi.Name + ": " + ReasonNoState
		default:
			if r := CheckJournal(st, info); r != "" {
				d.gap = vi.Name + ": " + r
			}
		}
		if fresh || d.gap != "" {
			ns, err := startState(jr, info, st)
			if err != nil {
				return &tracker.DeviceError{Path: path, Err: err, Remedy: "check that the volume's USN journal is readable"}
			}
			t.state.Volumes[vi.Name] = ns
		}
		if t.state.Sweeps[vi.Name] == nil {
			t.state.Sweeps[vi.Name] = &Sweep{}
		}
		d.volumes = append(d.volumes, &volume{info: vi, jr: jr})
	}
	if len(d.volumes) == 0 {
		return &tracker.DeviceError{Path: path, Err: errors.New("no NTFS volume on the disk"),
			Remedy: "the Windows tracker follows NTFS volumes (their USN journal); protect a disk that holds one"}
	}
	t.disks[path] = d
	t.state.Disks[path] = true
	return t.save()
}

// startState is a volume's state when its journal is followed from now:
// the files the retained journal shows open and being written are hashed
// from the first cut (OpenFiles), since NTFS writes no more records for
// them until they close.
func startState(jr Journal, info JournalInfo, old *VolumeState) (*VolumeState, error) {
	st := &VolumeState{JournalID: info.ID, NextUSN: info.NextUSN}
	if old != nil {
		st.Bitmap = old.Bitmap
	}
	recs, err := jr.Read(info.ID, max(info.FirstUSN, info.LowestValidUSN), info.NextUSN)
	if err != nil && !errors.Is(err, ErrEntriesDeleted) {
		return nil, err
	}
	st.Open = OpenFiles(recs)
	return st, nil
}

// Unprotect stops tracking a disk.
func (t *Tracker) Unprotect(path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.disks[path]
	if d == nil {
		return nil
	}
	for _, v := range d.volumes {
		delete(t.state.Volumes, v.info.Name)
		delete(t.state.Sweeps, v.info.Name)
	}
	delete(t.disks, path)
	delete(t.state.Disks, path)
	return t.save()
}

// Events delivers the changes found at each cut, then the cut's event.
func (t *Tracker) Events() <-chan []tracker.Event { return t.events }

// Now is the tracker's clock, MonotonicNow.
func (t *Tracker) Now() time.Duration { return MonotonicNow() }

var processStart = time.Now()

// MonotonicNow is the clock of the tracker's event times: a monotonic
// clock from the start of the process.
func MonotonicNow() time.Duration { return time.Since(processStart) }

// Cut makes a snapshot set of every protected volume, reports what
// changed since the previous one as generation N, and returns N+1. The
// changes are stamped with the time the cut began: every read of the
// previous round, from the previous snapshot, ended before it, and none of
// these changes is in that snapshot, so none taints it.
// While AppConsistent is on, cuts involve the VSS writers.
func (t *Tracker) Cut(ctx context.Context) (uint64, error) {
	t.mu.Lock()
	app := t.app
	t.mu.Unlock()
	return t.cut(ctx, app)
}

// AppConsistent makes the following cuts app-consistent (VSS writers,
// a copy backup) until it is turned off: the agent's freeze and thaw of
// an app-consistent point on Windows.
func (t *Tracker) AppConsistent(on bool) {
	t.mu.Lock()
	t.app = on
	t.mu.Unlock()
}

// CutApp is Cut with the VSS writers: an app-consistent point.
func (t *Tracker) CutApp(ctx context.Context) (uint64, error) { return t.cut(ctx, true) }

func (t *Tracker) cut(ctx context.Context, app bool) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, errors.New("cut: tracker closed")
	}
	stamp := t.Now()
	gen := t.gen
	// The journal's end, queried before the snapshot: what comes after it
	// is reported by the next cut.
	type q struct {
		d    *disk
		v    *volume
		info JournalInfo
	}
	var qs []q
	var names []string
	for _, path := range t.sortedDisks() {
		d := t.disks[path]
		for _, v := range d.volumes {
			info, err := v.jr.Query()
			if err != nil {
				return 0, fmt.Errorf("cut: %w", err)
			}
			qs = append(qs, q{d, v, info})
			names = append(names, v.info.Name)
		}
	}
	set, err := t.sys.Snapshot(ctx, names, app)
	if err != nil {
		return 0, fmt.Errorf("cut: snapshot: %w", err)
	}
	var batch []tracker.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case t.events <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		batch = nil
		return nil
	}
	fail := func(err error) (uint64, error) {
		set.Release()
		return 0, fmt.Errorf("cut: %w", err)
	}
	for _, x := range qs {
		st := t.state.Volumes[x.v.info.Name]
		reason := CheckJournal(st, x.info)
		var recs []Record
		if reason == "" {
			var err error
			recs, err = x.v.jr.Read(st.JournalID, st.NextUSN, x.info.NextUSN)
			if errors.Is(err, ErrEntriesDeleted) {
				reason = ReasonEntriesDeleted
			} else if err != nil {
				return fail(err)
			}
		}
		if reason != "" {
			x.d.gap = x.v.info.Name + ": " + reason
			ns, err := startState(x.v.jr, x.info, st)
			if err != nil {
				return fail(err)
			}
			t.state.Volumes[x.v.info.Name] = ns
			continue
		}
		snap, err := set.Volume(x.v.info.Name)
		if err != nil {
			return fail(err)
		}
		l := x.v.info.Layout
		res, err := Cut(st, l, recs, x.info.NextUSN, snap)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", x.v.info.Name, err))
		}
		sw := t.state.Sweeps[x.v.info.Name]
		sw.Reported(res.Dirty)
		swept, err := sw.Step(snap, l, st.Bitmap, t.opts.SweepBytes)
		if err != nil {
			return fail(fmt.Errorf("%s: sweep: %w", x.v.info.Name, err))
		}
		for _, r := range append(res.Dirty, swept...) {
			dr, ok := l.ToDisk(r)
			if !ok {
				continue
			}
			x.d.events++
			x.d.bytes += uint64(dr.Len)
			batch = append(batch, tracker.Event{Kind: tracker.EventQueued, Time: stamp,
				Extent: tracker.Extent{Disk: x.d.path, Offset: dr.Off, Length: dr.Len, Op: tracker.OpWrite, Gen: gen}})
			if len(batch) == tracker.MaxBatch {
				if err := flush(); err != nil {
					return fail(err)
				}
			}
		}
	}
	if err := t.save(); err != nil {
		return fail(err)
	}
	if t.snap != nil {
		t.snap.Release() // only the newest snapshot is kept
	}
	t.snap = set
	t.gen++
	batch = append(batch, tracker.Event{Kind: tracker.EventCut, Extent: tracker.Extent{Gen: gen}, Time: stamp})
	if err := flush(); err != nil {
		return 0, err
	}
	return t.gen, nil
}

func (t *Tracker) sortedDisks() []string {
	var p []string
	for k := range t.disks {
		p = append(p, k)
	}
	sort.Strings(p)
	return p
}

// ReadAt reads a protected disk as of the last cut: each part of the
// range that lies in a tracked volume from that volume's snapshot. Parts
// outside every tracked volume (the partition table, gaps, volumes that
// are not NTFS) are in no snapshot: they are read from outside, or, when
// outside is nil, the read fails with ErrNotInSnapshot.
func (t *Tracker) ReadAt(path string, p []byte, off int64, outside io.ReaderAt) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.disks[path]
	if d == nil {
		return 0, fmt.Errorf("read %s: not protected", path)
	}
	if t.snap == nil {
		return 0, fmt.Errorf("read %s: no cut yet", path)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		rest := p[done:]
		var from io.ReaderAt
		var base int64
		next := int64(-1) // start of the next volume after pos
		for _, v := range d.volumes {
			l := v.info.Layout
			if pos >= l.Offset && pos < l.Offset+l.Size {
				s, err := t.snap.Volume(v.info.Name)
				if err != nil {
					return done, err
				}
				from, base = s, l.Offset
				rest = rest[:min(int64(len(rest)), l.Offset+l.Size-pos)]
				break
			}
			if l.Offset > pos && (next < 0 || l.Offset < next) {
				next = l.Offset
			}
		}
		if from == nil {
			if outside == nil {
				return done, fmt.Errorf("read %s at %d+%d: %w", path, pos, len(rest), ErrNotInSnapshot)
			}
			if next >= 0 {
				rest = rest[:min(int64(len(rest)), next-pos)]
			}
			from = outside
		}
		k, err := from.ReadAt(rest, pos-base)
		done += k
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// ErrNotInSnapshot: the range lies outside the disk's NTFS volumes.
var ErrNotInSnapshot = errors.New("range is outside the snapshotted volumes")

// Completed is always true: a cut's data is read from its snapshot, which
// no later write changes.
func (t *Tracker) Completed(uint64) (bool, error) { return true, nil }

// Gap reports a tracking gap of the disk since it was protected or since
// its last AckGap.
func (t *Tracker) Gap(path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.disks[path]; d != nil && d.gap != "" {
		return &tracker.ResyncRequiredError{Disk: path, Reason: d.gap}
	}
	return nil
}

// AckGap clears the gap: its resync is scheduled.
func (t *Tracker) AckGap(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.disks[path]; d != nil {
		d.gap = ""
	}
}

// Adopted reports whether the state of an orderly stop was found: the
// USN journal kept recording while the agent was stopped, so nothing was
// missed (a volume whose journal lost records reports a Gap instead).
func (t *Tracker) Adopted() bool { return t.adopted }

// Untracked lists the volumes of a disk that are not NTFS: their changes
// are not tracked (docs/windows.md).
func (t *Tracker) Untracked(path string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.disks[path]; d != nil {
		return append([]string(nil), d.untracked...)
	}
	return nil
}

// Misses counts the blocks the sweep found changed with no cut reporting
// them.
func (t *Tracker) Misses() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, s := range t.state.Sweeps {
		n += s.Misses
	}
	return n
}

// Stats returns the counters.
func (t *Tracker) Stats() (tracker.Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := tracker.Stats{Generation: t.gen}
	for _, p := range t.sortedDisks() {
		d := t.disks[p]
		var misses uint64
		for _, v := range d.volumes {
			if sw := t.state.Sweeps[v.info.Name]; sw != nil {
				misses += sw.Misses
			}
		}
		s.Disks = append(s.Disks, tracker.DiskStats{Disk: p, Events: d.events, Bytes: d.bytes, Mode: "vss-usn", Misses: misses})
	}
	return s, nil
}

// Close releases the snapshot, marks the state clean and ends Events.
func (t *Tracker) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var err error
	if t.snap != nil {
		err = t.snap.Release()
		t.snap = nil
	}
	t.state.Clean = true
	err = errors.Join(err, t.save())
	close(t.events)
	return err
}
