package windows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// fakeJournal is a USN journal a test fills with the records Windows
// would write (ntfs-3g writes none).
type fakeJournal struct {
	id          uint64
	first, next int64
	recs        []Record
}

func (j *fakeJournal) Query() (JournalInfo, error) {
	return JournalInfo{ID: j.id, FirstUSN: j.first, NextUSN: j.next, MaxMajor: 4, RangeTracking: true}, nil
}

func (j *fakeJournal) Read(id uint64, from, to int64) ([]Record, error) {
	if id != j.id || from < j.first {
		return nil, fmt.Errorf("read from %d: %w", from, ErrEntriesDeleted)
	}
	var out []Record
	for _, r := range j.recs {
		if r.USN >= from && r.USN < to {
			out = append(out, r)
		}
	}
	return out, nil
}

func (j *fakeJournal) add(r Record) {
	r.USN = j.next
	j.recs = append(j.recs, r)
	j.next += 96
}

// imageSystem is one disk holding one NTFS volume (a live image file) at
// a partition offset; a snapshot is a copy of the image, so the live one
// can change after it.
type imageSystem struct {
	t       *testing.T
	live    string
	offset  int64
	size    int64
	journal *fakeJournal
	snaps   int
	extra   []VolumeInfo // volumes that are not NTFS
	noNTFS  bool
}

type imageSet struct{ snap *imageSnap }

func (s *imageSet) Volume(string) (Snapshot, error) { return s.snap, nil }
func (s *imageSet) Release() error                  { return nil }

func (s *imageSystem) Volumes(disk string) ([]VolumeInfo, error) {
	if s.noNTFS {
		return s.extra, nil
	}
	return append([]VolumeInfo{{Name: `\\?\Volume{test}\`, FS: "NTFS",
		Layout: Layout{Offset: s.offset, Size: s.size, ClusterSize: clusterSize}}}, s.extra...), nil
}
func (s *imageSystem) Journal(string) (Journal, error) { return s.journal, nil }
func (s *imageSystem) Snapshot(ctx context.Context, vols []string, app bool) (SnapshotSet, error) {
	s.snaps++
	cp := filepath.Join(s.t.TempDir(), fmt.Sprintf("snap%d.img", s.snaps))
	copyFile(s.t, s.live, cp)
	return &imageSet{snap: openImageSnap(s.t, cp)}, nil
}

// cutEvents cuts and collects the cut's events.
func cutEvents(t *testing.T, tr *Tracker) (uint64, []tracker.Event) {
	gen, err := tr.Cut(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var evs []tracker.Event
	for {
		batch := <-tr.Events()
		evs = append(evs, batch...)
		if batch[len(batch)-1].Kind == tracker.EventCut {
			return gen, evs
		}
	}
}

func TestTrackerOverImages(t *testing.T) {
	needNTFSTools(t)
	const size, offset = 32 << 20, 1 << 20
	live := mkImage(t, size)
	putFile(t, live, "data.bin", randBytes(800000))
	putFile(t, live, "other.bin", randBytes(300000))
	putFile(t, live, "far.bin", randBytes(4<<20)) // a raw write lands alone in its middle below
	sys := &imageSystem{t: t, live: live, offset: offset, size: size, journal: &fakeJournal{id: 7, first: 0, next: 4096}}
	stateFile := filepath.Join(t.TempDir(), "windows-tracker.state")
	tr, err := Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	const disk = `\\.\PhysicalDrive1`
	if err := tr.Protect(disk); err != nil {
		t.Fatal(err)
	}
	if err := tr.Gap(disk); err != nil || tr.Adopted() {
		t.Fatalf("first protection: gap %v, adopted %v", err, tr.Adopted())
	}
	if _, err := tr.ReadAt(disk, make([]byte, 4096), offset, nil); err == nil {
		t.Fatal("ReadAt before any cut succeeded")
	}
	gen, _ := cutEvents(t, tr) // the baseline
	if gen != 2 {
		t.Fatalf("first cut returned %d", gen)
	}
	snap1 := filepath.Join(t.TempDir(), "snap1.img")
	copyFile(t, live, snap1)

	// changes: a file rewritten, a new file, a raw write into other.bin
	putFile(t, live, "data.bin", randBytes(800000))
	sys.journal.add(Record{Major: 3, File: FileRef{Lo: inodeOf(t, live, "data.bin")}, Parent: FileRef{Lo: 5},
		Reason: ReasonDataOverwrite | ReasonClose})
	putFile(t, live, "new.bin", randBytes(100000))
	sys.journal.add(Record{Major: 3, File: FileRef{Lo: inodeOf(t, live, "new.bin")}, Parent: FileRef{Lo: 5},
		Reason: ReasonFileCreate | ReasonDataExtend | ReasonClose})
	attrs, _ := attrRuns(t, live, inodeOf(t, live, "other.bin"))
	rawWrite(t, live, attrs["$DATA"][0].LCN*clusterSize+8192, randBytes(4096))

	gen, evs := cutEvents(t, tr)
	if gen != 3 {
		t.Fatalf("second cut returned %d", gen)
	}
	var dirty tracker.Set
	for i, e := range evs {
		last := i == len(evs)-1
		switch {
		case last && (e.Kind != tracker.EventCut || e.Extent.Gen != 2):
			t.Fatalf("last event %+v, want the cut of generation 2", e)
		case !last && (e.Kind != tracker.EventQueued || e.Extent.Gen != 2 || e.Extent.Disk != disk || e.Time <= 0):
			t.Fatalf("event %+v", e)
		case !last:
			if e.Extent.Offset < offset || e.Extent.End() > offset+size {
				t.Fatalf("extent %+v outside the volume at %d", e.Extent, offset)
			}
			dirty.Add(e.Extent.Offset, e.Extent.Length)
		}
	}
	for _, off := range diffBlocks(t, snap1, live) {
		if !dirty.Covers(offset+off, 4096) {
			t.Fatalf("changed block at volume offset %#x not reported", off)
		}
	}
	// A raw write alone in its sweep block has no journal record and no
	// neighbour a cut reports: only the sweep finds it, and the disk's
	// counters say so (agentctl status, the metrics).
	if st, err := tr.Stats(); err != nil || len(st.Disks) != 1 || st.Disks[0].Misses != 0 {
		t.Fatalf("stats %+v, %v: want no miss yet", st, err)
	}
	far, _ := attrRuns(t, live, inodeOf(t, live, "far.bin"))
	rawWrite(t, live, far["$DATA"][0].LCN*clusterSize+2<<20, randBytes(4096))
	cutEvents(t, tr)
	if st, err := tr.Stats(); err != nil || len(st.Disks) != 1 || st.Disks[0].Misses == 0 {
		t.Fatalf("stats %+v, %v: want the raw write counted as a miss of the cuts", st, err)
	}

	// Reads come from the snapshot of the cut, never from the live volume.
	want := make([]byte, 64<<10)
	f, _ := os.Open(live)
	f.ReadAt(want, 0)
	f.Close()
	rawWrite(t, live, 0, randBytes(64<<10)) // the live volume moves on
	got := make([]byte, 64<<10)
	if _, err := tr.ReadAt(disk, got, offset, nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt: %v, or not the snapshot's bytes", err)
	}
	if _, err := tr.ReadAt(disk, got, 0, nil); !errors.Is(err, ErrNotInSnapshot) {
		t.Fatalf("ReadAt of the partition table: %v", err)
	}
	// A read across the partition's start: the part before it from the
	// disk, the part inside from the snapshot.
	pt := bytes.Repeat([]byte{0xAB}, offset)
	across := make([]byte, 8192)
	if _, err := tr.ReadAt(disk, across, offset-4096, bytes.NewReader(pt)); err != nil ||
		!bytes.Equal(across[:4096], pt[:4096]) || !bytes.Equal(across[4096:], want[:4096]) {
		t.Fatalf("ReadAt across the partition start: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	// An orderly restart: adopted, no gap.
	tr, err = Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(disk); err != nil {
		t.Fatal(err)
	}
	if err := tr.Gap(disk); err != nil || !tr.Adopted() {
		t.Fatalf("orderly restart: gap %v, adopted %v", err, tr.Adopted())
	}
	// Records deleted before they were read: a gap at the next cut.
	sys.journal.first = sys.journal.next + 1
	sys.journal.next += 4096
	cutEvents(t, tr)
	assertGap(t, tr, disk, ReasonEntriesDeleted)
	tr.AckGap(disk)
	if err := tr.Gap(disk); err != nil {
		t.Fatalf("after AckGap: %v", err)
	}
	// No Close: a crash. The next start reports a gap.
	tr2, err := Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Protect(disk); err != nil {
		t.Fatal(err)
	}
	assertGap(t, tr2, disk, ReasonNoState)
	tr2.Close()
	tr.Close()

	// The journal was recreated while the agent was stopped.
	sys.journal.id = 8
	tr3, err := Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	defer tr3.Close()
	if err := tr3.Protect(disk); err != nil {
		t.Fatal(err)
	}
	assertGap(t, tr3, disk, ReasonJournalChanged)
}

func assertGap(t *testing.T, tr *Tracker, disk, reason string) {
	t.Helper()
	err := tr.Gap(disk)
	var rr *tracker.ResyncRequiredError
	if !errors.As(err, &rr) || !bytes.Contains([]byte(rr.Reason), []byte(reason)) {
		t.Fatalf("gap %v, want one for %q", err, reason)
	}
}

// TestTrackerNotNTFS: a volume that is not NTFS (an EFI partition) is
// reported as a gap when its disk is first protected, not at every
// start, and listed as untracked; a disk with no NTFS volume is refused.
func TestTrackerNotNTFS(t *testing.T) {
	needNTFSTools(t)
	const size, offset = 16 << 20, 101 << 20
	live := mkImage(t, size)
	efi := VolumeInfo{Name: `\\?\Volume{efi}\`, FS: "FAT32", Layout: Layout{Offset: 1 << 20, Size: 100 << 20}}
	sys := &imageSystem{t: t, live: live, offset: offset, size: size, journal: &fakeJournal{id: 1, next: 64},
		extra: []VolumeInfo{efi}}
	stateFile := filepath.Join(t.TempDir(), "state")
	const disk = `\\.\PhysicalDrive0`
	tr, err := Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Protect(disk); err != nil {
		t.Fatal(err)
	}
	assertGap(t, tr, disk, ReasonNotNTFS)
	if u := tr.Untracked(disk); len(u) != 1 || u[0] != efi.Name {
		t.Fatalf("untracked %v", u)
	}
	tr.AckGap(disk)
	tr.Close()
	tr, err = Open(sys, Options{StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Protect(disk); err != nil {
		t.Fatal(err)
	}
	if err := tr.Gap(disk); err != nil {
		t.Fatalf("orderly restart of a disk with an EFI partition: %v", err)
	}
	sys.noNTFS = true
	var de *tracker.DeviceError
	if err := tr.Protect(`\\.\PhysicalDrive9`); !errors.As(err, &de) {
		t.Fatalf("a disk with no NTFS volume: %v", err)
	}
}
