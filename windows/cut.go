package windows

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// Snapshot is one volume as of a cut (a VSS snapshot on Windows), read
// only. Its data never comes from the live volume.
type Snapshot interface {
	io.ReaderAt
	// Bitmap is the volume's allocation bitmap.
	Bitmap() (*Bitmap, error)
	// FileRuns returns the runs of a stream of a file: "" is the default
	// data stream, "$I30" a directory's index allocation. A file that no
	// longer exists gives an error wrapping ErrFileGone.
	FileRuns(ref FileRef, stream string) ([]Run, error)
	// MetadataRuns returns the runs of NTFS's own files ($MFT, $MFTMirr,
	// $LogFile, $Bitmap, $Boot, $Secure, $UpCase, the USN journal, ...).
	MetadataRuns() ([]Run, error)
}

// ErrFileGone: the file was deleted before the snapshot; it has no
// clusters left to replicate (whoever reuses them is tracked).
var ErrFileGone = errors.New("file no longer exists")

// HashBlock is the granularity of the hashed set (metadata files and files
// kept open) and of the sweep.
const HashBlock = 64 << 10

// VolumeState is what the tracker keeps of a volume between cuts, and
// across restarts (state.go).
type VolumeState struct {
	JournalID uint64
	NextUSN   int64
	Bitmap    *Bitmap
	// Hashes of the blocks of the hashed set at the last cut, by volume
	// offset.
	Hashes map[int64]uint64
	// Open: files with a data change recorded and no CLOSE yet. They get
	// no further records until they close, so their clusters are hashed.
	Open map[FileRef]bool
}

// Gap reasons, as Gap reports them.
const (
	ReasonJournalChanged = "USN journal id changed (the journal was deleted or recreated)"
	ReasonEntriesDeleted = "USN journal entries were deleted before they were read (ERROR_JOURNAL_ENTRY_DELETED)"
	ReasonNoState        = "tracking state unknown (first start, or the agent did not stop cleanly)"
	ReasonNotNTFS        = "volume is not NTFS: it has no USN journal"
	ReasonNoJournal      = "volume has no USN journal"
)

// CheckJournal says whether the journal still holds every record since
// the state's last cut: "" if so, else the reason of the gap.
func CheckJournal(st *VolumeState, info JournalInfo) string {
	switch {
	case st == nil:
		return ReasonNoState
	case info.ID != st.JournalID:
		return ReasonJournalChanged
	case st.NextUSN < info.FirstUSN || st.NextUSN < info.LowestValidUSN:
		return ReasonEntriesDeleted
	}
	return ""
}

// CutResult is what one cut found on a volume.
type CutResult struct {
	// Dirty are the changed byte ranges of the volume, merged.
	Dirty []tracker.Range
	// Files, WholeFiles, Hashed and NewClusters count what was found, for
	// the logs and the tests.
	Files, WholeFiles, Directories int
	HashedBlocks, HashChanged      int
	NewClusters                    int64
}

// Cut folds the journal records read since the last cut (from st.NextUSN
// up to next, a USN queried before snap was made) into the volume's dirty
// ranges, reading layout from snap, and advances st. Over-reporting is
// harmless (the agent reads what is reported from the snapshot); missing a
// change is not.
func Cut(st *VolumeState, l Layout, recs []Record, next int64, snap Snapshot) (CutResult, error) {
	var res CutResult
	var dirty tracker.Set
	add := func(rs ...tracker.Range) {
		for _, r := range rs {
			dirty.Add(r.Off, r.Len)
		}
	}
	type fileChange struct {
		reasons uint32
		ranges  []FileRange
		v4      bool
		open    bool // the last data record has no CLOSE after it
	}
	files := map[FileRef]*fileChange{}
	var order []FileRef
	parents := map[FileRef]bool{}
	var parentOrder []FileRef
	for _, r := range recs {
		// The parent's index changes with names, and also with the
		// copies of sizes and times NTFS keeps in index entries, which
		// no record of the directory announces: every record's parent.
		if !parents[r.Parent] {
			parents[r.Parent] = true
			parentOrder = append(parentOrder, r.Parent)
		}
		if r.Reason&reasonData == 0 && r.Major != 4 {
			if f := files[r.File]; f != nil && r.Reason&ReasonClose != 0 {
				f.open = false
			}
			continue
		}
		f := files[r.File]
		if f == nil {
			f = &fileChange{}
			files[r.File] = f
			order = append(order, r.File)
		}
		f.reasons |= r.Reason
		if r.Major == 4 {
			f.v4 = true
			f.ranges = append(f.ranges, r.Ranges...)
		}
		f.open = r.Reason&ReasonClose == 0
	}
	if st.Open == nil {
		st.Open = map[FileRef]bool{}
	}
	for _, ref := range order {
		f := files[ref]
		runs, err := snap.FileRuns(ref, "")
		if errors.Is(err, ErrFileGone) {
			delete(st.Open, ref)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("file %v: %w", ref, err)
		}
		res.Files++
		if f.v4 && f.reasons&(reasonData&^ReasonDataOverwrite&^ReasonDataExtend) == 0 {
			add(l.FileRanges(runs, f.ranges)...)
		} else {
			// only V2/V3 records, or a change range tracking does not
			// describe (named streams, truncation): the whole file
			res.WholeFiles++
			add(l.RunRanges(runs)...)
		}
		if f.open {
			st.Open[ref] = true
		} else {
			delete(st.Open, ref)
		}
	}
	for _, p := range parentOrder {
		runs, err := snap.FileRuns(p, "$I30")
		if errors.Is(err, ErrFileGone) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("directory %v: %w", p, err)
		}
		res.Directories++
		add(l.RunRanges(runs)...)
	}

	// The hashed set: metadata files and files still open.
	hashed, err := snap.MetadataRuns()
	if err != nil {
		return res, fmt.Errorf("metadata files: %w", err)
	}
	for ref := range st.Open {
		runs, err := snap.FileRuns(ref, "")
		if errors.Is(err, ErrFileGone) {
			delete(st.Open, ref)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("open file %v: %w", ref, err)
		}
		hashed = append(hashed, runs...)
	}
	hashes, changed, err := hashRuns(snap, l, hashed, st.Hashes)
	if err != nil {
		return res, err
	}
	res.HashedBlocks, res.HashChanged = len(hashes), len(changed)
	add(changed...)
	st.Hashes = hashes

	bm, err := snap.Bitmap()
	if err != nil {
		return res, fmt.Errorf("volume bitmap: %w", err)
	}
	fresh, err := NewlyUsed(st.Bitmap, bm)
	if err != nil {
		return res, err
	}
	for _, r := range fresh {
		res.NewClusters += r.Len
	}
	add(l.RunRanges(fresh)...)
	st.Bitmap = bm
	st.NextUSN = next

	for _, r := range dirty.Ranges() {
		if rr, ok := clip(r, l.Size); ok {
			res.Dirty = append(res.Dirty, rr)
		}
	}
	return res, nil
}

func clip(r tracker.Range, size int64) (tracker.Range, bool) {
	end := min(r.End(), size)
	if r.Off >= end {
		return tracker.Range{}, false
	}
	return tracker.Range{Off: r.Off, Len: end - r.Off}, true
}

// hashRuns hashes every HashBlock of the volume that runs touch, read from
// snap, and returns the new hashes and the blocks whose hash differs from
// old (or that old does not have).
func hashRuns(snap io.ReaderAt, l Layout, runs []Run, old map[int64]uint64) (map[int64]uint64, []tracker.Range, error) {
	var blocks tracker.Set
	for _, r := range l.RunRanges(runs) {
		start := r.Off / HashBlock * HashBlock
		end := min((r.End()+HashBlock-1)/HashBlock*HashBlock, l.Size)
		if end > start {
			blocks.Add(start, end-start)
		}
	}
	hashes := map[int64]uint64{}
	var changed []tracker.Range
	buf := make([]byte, HashBlock)
	for _, r := range blocks.Ranges() {
		for off := r.Off; off < r.End(); off += HashBlock {
			n := min(HashBlock, r.End()-off)
			h, err := hashAt(snap, buf[:n], off)
			if err != nil {
				return nil, nil, err
			}
			hashes[off] = h
			if o, ok := old[off]; !ok || o != h {
				changed = append(changed, tracker.Range{Off: off, Len: n})
			}
		}
	}
	return hashes, changed, nil
}

func hashAt(r io.ReaderAt, buf []byte, off int64) (uint64, error) {
	if _, err := r.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF)) {
		return 0, fmt.Errorf("read snapshot at %d: %w", off, err)
	}
	sum := sha256.Sum256(buf)
	return binary.LittleEndian.Uint64(sum[:]), nil
}

// OpenFiles returns the files whose last data-change record in recs has
// no CLOSE after it: files open and being written. NTFS writes a file's
// record once per reason until the handle closes, so a file opened and
// written before the tracker's first cut gets no record for later writes;
// seeding the hashed set with the open files of the retained journal
// covers them (one whose first record the journal no longer holds is left
// to the sweep).
func OpenFiles(recs []Record) map[FileRef]bool {
	open := map[FileRef]bool{}
	for _, r := range recs {
		switch {
		case r.Reason&ReasonClose != 0:
			delete(open, r.File)
		case r.Reason&reasonData != 0 || r.Major == 4:
			open[r.File] = true
		}
	}
	return open
}
