package store

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// The logic of this file is the part of a backend that does not depend on
// where the bytes live: which segments are acceptable, how a segment's
// cuts and notes change a disk's cut list, and which points a machine's
// cut lists make. Local uses it on its directory, and store/azblob on its
// blobs, so both list the same points from the same journals.

// Cut is one cut in a disk's journal, as a backend keeps it in its cut
// list (cuts.json).
type Cut = cutEntry

// CutNote is what a NOTE record says of its point.
type CutNote = cutNote

// CutList is a disk's cut list: its cuts in journal order and the notes
// whose cut has not come yet.
type CutList = cutsMeta

// CheckSegment reads and checks the segment file at path as segment seq of
// machine's disk: every record, the trailer, nothing after it, the header.
// With m (the Map of a caller that checked the file in full) only m's
// header, completeness and the file's size are checked. It returns the
// segment's Map.
func CheckSegment(ctx context.Context, path, machine, disk string, seq uint64, m *hrlfmt.Map) (*hrlfmt.Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	if m != nil {
		return m, checkMap(m, f, path, machine, disk, seq)
	}
	return checkSegment(ctx, f, path, machine, disk, seq)
}

// SegmentCuts returns the cuts and notes of the records of segment seq
// (its Map's records), size being the disk's size after it.
func SegmentCuts(seq uint64, size int64, recs []hrlfmt.Record) ([]Cut, map[string]CutNote) {
	var cuts []Cut
	var notes map[string]CutNote
	for i, rec := range recs {
		switch {
		case rec.Type == hrlfmt.RecCut && rec.Cut != nil:
			c := rec.Cut
			cuts = append(cuts, Cut{ID: c.PointID, Kind: c.Kind.String(), Gen: c.Gen, Time: c.Time,
				Seq: seq, Record: i, Pos: rec.Pos, Size: size})
		case rec.Type == hrlfmt.RecNote && rec.Note != nil:
			if notes == nil {
				notes = make(map[string]CutNote)
			}
			notes[rec.Note.PointID] = CutNote{Freeze: rec.Note.Freeze, Text: rec.Note.Text}
		}
	}
	return cuts, notes
}

// MergeCuts returns the cut list old with the cuts and pending notes of
// segment seq and later replaced by those of segment seq: a cut gets the
// note of its point id from this segment or, failing that, a pending note
// of an earlier one; notes that no cut takes stay pending. changed is
// false when the list is the same.
func MergeCuts(old CutList, seq uint64, cuts []Cut, notes map[string]CutNote) (m CutList, changed bool) {
	m.Version = 1
	for _, c := range old.Cuts {
		if c.Seq < seq {
			m.Cuts = append(m.Cuts, c)
		}
	}
	pending := make(map[string]cutNote)
	for _, n := range old.Notes {
		if n.Seq < seq {
			pending[n.ID] = n.cutNote
		}
	}
	taken := make(map[string]bool)
	for _, c := range cuts {
		if n, ok := notes[c.ID]; ok {
			c.Note = &n
			taken[c.ID] = true
		} else if n, ok := pending[c.ID]; ok {
			c.Note = &n
			delete(pending, c.ID)
		}
		m.Cuts = append(m.Cuts, c)
	}
	for _, n := range old.Notes {
		if _, ok := pending[n.ID]; ok && n.Seq < seq {
			m.Notes = append(m.Notes, n)
		}
	}
	for id, n := range notes {
		if !taken[id] {
			m.Notes = append(m.Notes, pendingNote{ID: id, Seq: seq, cutNote: n})
		}
	}
	slices.SortStableFunc(m.Notes, func(a, b pendingNote) int {
		if a.Seq != b.Seq {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(m.Cuts) == len(old.Cuts) && len(cuts) == 0 && len(m.Notes) == len(old.Notes) && len(notes) == 0 {
		return old, false
	}
	return m, true
}

// AppliedCuts returns the cuts of all that are in segments up to
// appliedSeq, in journal order, the first of each point id only.
func AppliedCuts(all []Cut, appliedSeq uint64) []Cut {
	seen := make(map[string]bool, len(all))
	var cuts []Cut
	for _, c := range all {
		if c.Seq > appliedSeq || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		cuts = append(cuts, c)
	}
	return cuts
}

// DiskJournal is what ListPoints needs of one disk: its applied cuts (as
// AppliedCuts gives them) and the first segment its base does not hold.
type DiskJournal struct {
	Cuts    []Cut
	BaseSeq uint64
}

// ListPoints returns the points of a machine whose disk set is disks
// (sorted) from each disk's journal (see the package documentation,
// Points), and for each disk the cut of each listed point.
func ListPoints(disks []string, journals map[string]DiskJournal) ([]Point, map[string]map[string]Cut) {
	if len(disks) == 0 {
		return nil, nil
	}
	byDisk := make(map[string]map[string]cutEntry, len(disks))
	for _, d := range disks {
		m := make(map[string]cutEntry, len(journals[d].Cuts))
		for _, c := range journals[d].Cuts {
			m[c.ID] = c
		}
		byDisk[d] = m
	}
	var pts []Point
	for _, c := range journals[disks[0]].Cuts {
		everywhere := true
		for _, d := range disks[1:] {
			if _, ok := byDisk[d][c.ID]; !ok {
				everywhere = false
				break
			}
		}
		if !everywhere {
			continue
		}
		p := Point{ID: c.ID, Time: c.Time, Kind: c.Kind, Gen: c.Gen, Disks: slices.Clone(disks), Materializable: true}
		noted := false
		for _, d := range disks {
			dc := byDisk[d][c.ID]
			if dc.Dropped || dc.Seq < journals[d].BaseSeq {
				p.Materializable = false
			}
			if dc.Note != nil && !noted {
				p.Freeze, p.Note, noted = dc.Note.Freeze, dc.Note.Text, true
			}
		}
		pts = append(pts, p)
	}
	listed := make(map[string]map[string]cutEntry, len(disks))
	for _, d := range disks {
		listed[d] = make(map[string]cutEntry, len(pts))
		for _, p := range pts {
			listed[d][p.ID] = byDisk[d][p.ID]
		}
	}
	return pts, listed
}

// SegmentIndex returns the extent index (index.go) of segment seq, whose
// Map is m, in the form Local keeps in journal/%016x.idx.
func SegmentIndex(seq uint64, m *hrlfmt.Map) []byte {
	x := segIndex{Seq: seq, HeaderLen: m.HeaderSize, Entries: make([]indexEntry, 0, len(m.Records))}
	for _, rec := range m.Records {
		x.add(rec, rec.Pos+rec.Size)
	}
	x.SegSize = m.Summary.ValidBytes
	return x.marshal()
}

// WriteRecord writes a DATA or ZERO record, decoded with its data, to a
// sparse image of size bytes (a ZERO punches a hole); a CUT or a NOTE
// changes nothing. An extent beyond size is an error.
func WriteRecord(img *os.File, rec hrlfmt.Record, size int64) error {
	if rec.Type == hrlfmt.RecZero && (rec.Offset < 0 || rec.Length <= 0 || rec.Offset > size-rec.Length) {
		return fmt.Errorf("extent [%d, +%d) beyond the image's %d bytes", rec.Offset, rec.Length, size)
	}
	return applyDecoded(img, rec, size)
}
