package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// importPrefix starts the names of the temporary files Apply copies
// segments into, in the journal directory.
const importPrefix = ".import-"

// Apply applies segment seq of a disk, the .hrl file at segmentPath, to the
// disk's replica, journal and cut list (see the package documentation).
// The first segment of a disk is 0; a sequence number already applied is a
// no-op; one beyond the next is an error wrapping ErrOutOfOrder. A segment
// that is not whole and valid, or whose header names another machine, disk
// or sequence number, is an error and nothing of it is applied. Apply is
// durable when it returns nil; after an error or a crash, Apply of the same
// segment completes it.
func (l *Local) Apply(ctx context.Context, machine, disk string, seq uint64, segmentPath string) error {
	return l.ApplyMapped(ctx, machine, disk, seq, segmentPath, nil)
}

// ApplyMapped is Apply of a segment that the caller has already read and
// checked in full: m is the hrlfmt.Map that hrlfmt.Scan gave for exactly
// the bytes of the file at segmentPath, which have not changed since. Apply
// then trusts m for the records and does not decode the segment again: it
// checks only that m is of a complete segment of this machine, disk and
// sequence number and of the file's size, and copies raw DATA records from
// the file to the replica in the kernel. A nil m is Apply: the segment is
// read and checked in full first.
func (l *Local) ApplyMapped(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error {
	if err := CheckName(machine); err != nil {
		return fmt.Errorf("apply: machine: %w", err)
	}
	if err := CheckName(disk); err != nil {
		return fmt.Errorf("apply: disk: %w", err)
	}
	if err := l.apply(ctx, machine, disk, seq, segmentPath, m); err != nil {
		return fmt.Errorf("apply %s/%s segment %d: %w", machine, disk, seq, err)
	}
	return nil
}

func (l *Local) apply(ctx context.Context, machine, disk string, seq uint64, segmentPath string, m *hrlfmt.Map) error {
	locks := l.locks(machine, disk)
	locks.apply.Lock()
	defer locks.apply.Unlock()

	dir := l.diskDir(machine, disk)
	if !locks.tidied {
		removeTemps(dir)
		locks.tidied = true
	}
	st, ok, err := readApplied(dir)
	if err != nil {
		return err
	}
	switch {
	case ok && seq <= st.Seq:
		return nil
	case ok && seq != st.Seq+1:
		return fmt.Errorf("expected segment %d: %w", st.Seq+1, ErrOutOfOrder)
	case !ok && seq != 0:
		return fmt.Errorf("expected segment 0, the first: %w", ErrOutOfOrder)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	jdir := filepath.Join(dir, journalDir)
	if err := mkdirAllSync(jdir); err != nil {
		return err
	}
	m, err = importSegment(ctx, jdir, machine, disk, seq, segmentPath, m)
	if err != nil {
		return err
	}
	hdr := m.Header
	if err := l.runHook("imported"); err != nil {
		return err
	}
	size := max(st.Size, hdr.DiskSize)
	applied, err := l.applyRecords(ctx, locks, dir, seq, size, m)
	if err != nil {
		return err
	}
	if err := l.runHook("records"); err != nil {
		return err
	}
	if err := writeIndex(jdir, &applied.index); err != nil {
		return err
	}
	if err := l.runHook("index"); err != nil {
		return err
	}
	if err := updateCuts(dir, seq, applied.cuts, applied.notes); err != nil {
		return err
	}
	if err := l.runHook("cuts"); err != nil {
		return err
	}
	b, err := json.Marshal(appliedState{Seq: seq, Size: size, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, appliedFile, append(b, '\n'))
}

// importSegment puts the segment at src into the journal directory jdir as
// segment seq, after reading and checking all of it: every record, the
// trailer, the end of the file, and the header's machine, disk and
// sequence number; with the Map m of a caller that did that, only m's
// header and completeness and the file's size. Where it can, it
// hard-links src into the journal instead of copying it: the bytes are the
// same, and the store owns them from then on (the process server only ever removes its name for the
// file, never writes to it). Across file systems, or where links are
// refused, it copies. The journal entry is durable when it returns. It
// returns the Map of the journal entry.
func importSegment(ctx context.Context, jdir, machine, disk string, seq uint64, src string, m *hrlfmt.Map) (*hrlfmt.Map, error) {
	// Temporary files of an Apply that was interrupted are garbage.
	if ents, err := os.ReadDir(jdir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), importPrefix) {
				os.Remove(filepath.Join(jdir, e.Name()))
			}
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	defer in.Close()
	if m != nil {
		err = checkMap(m, in, src, machine, disk, seq)
	} else {
		m, err = checkSegment(ctx, in, src, machine, disk, seq)
	}
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(jdir, hrlfmt.SegmentName(seq))
	// A journal copy of this sequence number is what an interrupted Apply
	// left; its records may be in current.img, so it must be this segment.
	if fi, err := os.Stat(dst); err == nil {
		if si, serr := in.Stat(); serr == nil && os.SameFile(fi, si) {
			return m, nil // the link an interrupted Apply made
		}
		prev, err := fileSum(dst)
		if err != nil {
			return nil, fmt.Errorf("check journal: %w", err)
		}
		cur, err := fileSum(src)
		if err != nil {
			return nil, fmt.Errorf("check segment: %w", err)
		}
		if !bytes.Equal(prev, cur) {
			return nil, fmt.Errorf("segment %s differs from the segment %d that an interrupted apply left in the journal: the replica may hold part of that one; resync the disk", src, seq)
		}
		return m, syncDir(jdir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check journal: %w", err)
	}
	if err := os.Link(src, dst); err == nil {
		// The caller made src durable; the fsync makes sure of it (and of
		// the link count), the directory's of the new name.
		if err := in.Sync(); err != nil {
			os.Remove(dst)
			return nil, fmt.Errorf("link segment: %w", err)
		}
		if err := syncDir(jdir); err != nil {
			os.Remove(dst)
			return nil, err
		}
		return m, nil
	}
	// The copy is checked in full: its bytes are the ones the store keeps.
	return copySegment(ctx, in, jdir, dst, machine, disk, seq)
}

// checkSegment reads the whole segment f (named name) and checks it: every
// record, the trailer, that nothing follows it, and the header. It returns
// the segment's Map.
func checkSegment(ctx context.Context, f *os.File, name, machine, disk string, seq uint64) (*hrlfmt.Map, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := hrlfmt.Scan(bufio.NewReaderSize(io.NewSectionReader(f, 0, fi.Size()), 1<<20))
	if err != nil {
		if m.Summary.Header == (hrlfmt.Header{}) {
			return nil, fmt.Errorf("segment %s: %w", name, err)
		}
		if herr := checkHeader(m.Header, machine, disk, seq); herr != nil {
			return nil, fmt.Errorf("segment %s: %w", name, herr)
		}
		return nil, fmt.Errorf("segment %s: %w", name, err)
	}
	return m, checkMap(m, f, name, machine, disk, seq)
}

// checkMap checks the Map m against segment seq of machine's disk and
// against f, the segment's file (named name): a complete segment, of f's
// size.
func checkMap(m *hrlfmt.Map, f *os.File, name, machine, disk string, seq uint64) error {
	if err := checkHeader(m.Header, machine, disk, seq); err != nil {
		return fmt.Errorf("segment %s: %w", name, err)
	}
	if !m.Summary.Complete {
		return fmt.Errorf("segment %s: no trailer", name)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("segment %s: %w", name, err)
	}
	if fi.Size() != m.Summary.ValidBytes {
		return fmt.Errorf("segment %s: %d bytes, but the checked segment had %d", name, fi.Size(), m.Summary.ValidBytes)
	}
	return nil
}

// copySegment copies the segment in to dst in jdir, durably: a temporary
// file, fsync, a check of the copy (the bytes the store will own), rename,
// fsync of the directory.
func copySegment(ctx context.Context, in *os.File, jdir, dst, machine, disk string, seq uint64) (m *hrlfmt.Map, err error) {
	tmp, err := os.CreateTemp(jdir, importPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("copy segment: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, io.NewSectionReader(in, 0, 1<<62)); err != nil {
		return nil, fmt.Errorf("copy segment: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("copy segment: %w", err)
	}
	if m, err = checkSegment(ctx, tmp, tmp.Name(), machine, disk, seq); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("copy segment: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return nil, fmt.Errorf("copy segment: %w", err)
	}
	return m, syncDir(jdir)
}

// removeTemps removes the temporary files of metadata writes that a crash
// left in the disk directory dir.
func removeTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		for _, name := range []string{cutsFile, appliedFile} {
			if strings.HasPrefix(e.Name(), "."+name+".tmp-") {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	jdir := filepath.Join(dir, journalDir)
	ents, err = os.ReadDir(jdir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), indexExt+".tmp-") {
			os.Remove(filepath.Join(jdir, e.Name()))
		}
	}
}

// checkHeader checks that a segment's header is that of segment seq of
// machine's disk.
func checkHeader(h hrlfmt.Header, machine, disk string, seq uint64) error {
	switch {
	case h.Machine != machine:
		return fmt.Errorf("header names machine %q, not %q", h.Machine, machine)
	case h.Disk != disk:
		return fmt.Errorf("header names disk %q, not %q", h.Disk, disk)
	case h.Seq != seq:
		return fmt.Errorf("header has sequence number %d, not %d", h.Seq, seq)
	}
	return nil
}

// fileSum returns the SHA-256 of a file's content.
func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// appliedSegment is what applyRecords learnt of a segment.
type appliedSegment struct {
	cuts  []cutEntry
	notes map[string]cutNote // the NOTE records, by point id (the last one wins)
	index segIndex
}

// applyRecords writes the records of journal segment seq, whose Map is m,
// to current.img, grown to size (and base.img with it), and makes them
// durable. Raw DATA records go from the journal file to the image without
// passing through user space where the file system allows
// (copy_file_range); lz4 ones are read and uncompressed. It returns the
// segment's cuts, notes and extent index.
func (l *Local) applyRecords(ctx context.Context, locks *diskLocks, dir string, seq uint64, size int64, m *hrlfmt.Map) (seg appliedSegment, err error) {
	locks.cur.Lock()
	defer locks.cur.Unlock()
	cur, curNew, err := openGrow(filepath.Join(dir, currentImg), size)
	if err != nil {
		return seg, err
	}
	defer cur.Close()
	base, baseNew, err := openGrow(filepath.Join(dir, baseImg), size)
	if err != nil {
		return seg, err
	}
	defer base.Close()
	if err := base.Sync(); err != nil {
		return seg, fmt.Errorf("sync base image: %w", err)
	}
	if curNew || baseNew {
		if err := syncDir(dir); err != nil {
			return seg, err
		}
	}
	jf, err := os.Open(filepath.Join(dir, journalDir, hrlfmt.SegmentName(seq)))
	if err != nil {
		return seg, fmt.Errorf("journal segment: %w", err)
	}
	defer jf.Close()
	seg.index = segIndex{Seq: seq, HeaderLen: m.HeaderSize, Entries: make([]indexEntry, 0, len(m.Records))}
	var buf, stored []byte
	for i, rec := range m.Records {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return seg, err
			}
		}
		if err := applyRecord(cur, jf, rec, size, &buf, &stored); err != nil {
			return seg, fmt.Errorf("record %d at offset %d: %w", i, rec.Pos, err)
		}
		seg.index.add(rec, rec.Pos+rec.Size)
		switch rec.Type {
		case hrlfmt.RecCut:
			c := rec.Cut
			seg.cuts = append(seg.cuts, cutEntry{ID: c.PointID, Kind: c.Kind.String(), Gen: c.Gen, Time: c.Time,
				Seq: seq, Record: i, Pos: rec.Pos, Size: size})
		case hrlfmt.RecNote:
			if seg.notes == nil {
				seg.notes = make(map[string]cutNote)
			}
			seg.notes[rec.Note.PointID] = cutNote{Freeze: rec.Note.Freeze, Text: rec.Note.Text}
		}
		if l.hook != nil {
			if err := l.runHook(fmt.Sprintf("record %d", i)); err != nil {
				return seg, err
			}
		}
	}
	seg.index.SegSize = m.Summary.ValidBytes
	if err := cur.Sync(); err != nil {
		return seg, fmt.Errorf("sync replica: %w", err)
	}
	return seg, nil
}

// applyRecord writes a DATA or ZERO record of the journal segment jf to an
// image of size bytes, with buf and stored as scratch space; a CUT or a
// NOTE changes nothing.
func applyRecord(img, jf *os.File, rec hrlfmt.Record, size int64, buf, stored *[]byte) error {
	switch rec.Type {
	case hrlfmt.RecData, hrlfmt.RecZero:
		if rec.Offset < 0 || rec.Length <= 0 || rec.Offset > size-rec.Length {
			return fmt.Errorf("extent [%d, +%d) beyond the image's %d bytes", rec.Offset, rec.Length, size)
		}
	}
	switch rec.Type {
	case hrlfmt.RecData:
		off, n := rec.DataSpan()
		if rec.Compression == hrlfmt.CompressNone {
			if n != rec.Length {
				return fmt.Errorf("data record of %d bytes for a length of %d", n, rec.Length)
			}
			if err := copyExtent(img, rec.Offset, jf, off, n, buf); err != nil {
				return fmt.Errorf("write image: %w", err)
			}
			return nil
		}
		if n <= 0 || n > hrlfmt.MaxPayload {
			return fmt.Errorf("data record of %d stored bytes", n)
		}
		if int64(cap(*stored)) < n {
			*stored = make([]byte, n)
		}
		st := (*stored)[:n]
		if _, err := jf.ReadAt(st, off); err != nil {
			return fmt.Errorf("read journal segment: %w", err)
		}
		data, err := hrlfmt.DecodeData(rec, st, *buf)
		if err != nil {
			return err
		}
		*buf = data[:cap(data)]
		if err := writeFull(img, data, rec.Offset); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
	case hrlfmt.RecZero:
		if err := punchHole(img, rec.Offset, rec.Length); err != nil {
			return fmt.Errorf("zero image: %w", err)
		}
	case hrlfmt.RecCut:
		if rec.Cut == nil {
			return errors.New("cut record without a cut")
		}
	case hrlfmt.RecNote:
		if rec.Note == nil {
			return errors.New("note record without a note")
		}
	default:
		return fmt.Errorf("unexpected %v record", rec.Type)
	}
	return nil
}

// applyDecoded writes a DATA or ZERO record, decoded with its data, to an
// image of size bytes; a CUT or a NOTE changes nothing.
func applyDecoded(img *os.File, rec hrlfmt.Record, size int64) error {
	switch rec.Type {
	case hrlfmt.RecData:
		if rec.Offset < 0 || rec.Length <= 0 || rec.Offset > size-rec.Length {
			return fmt.Errorf("extent [%d, +%d) beyond the image's %d bytes", rec.Offset, rec.Length, size)
		}
		if int64(len(rec.Data)) != rec.Length {
			return fmt.Errorf("data record of %d bytes for a length of %d", len(rec.Data), rec.Length)
		}
		if err := writeFull(img, rec.Data, rec.Offset); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		return nil
	}
	return applyRecord(img, nil, rec, size, nil, nil)
}

// updateCuts replaces the cuts and pending notes of segment seq and later
// in cuts.json of the disk in dir by those of segment seq, durably. A cut
// gets the note of its point id from this segment or, failing that, a
// pending note of an earlier one (a NOTE precedes its CUT but may end the
// segment before); notes that no cut of the segment takes stay pending.
func updateCuts(dir string, seq uint64, cuts []cutEntry, notes map[string]cutNote) error {
	old, err := readCutsMeta(dir)
	if err != nil {
		return err
	}
	m, changed := MergeCuts(old, seq, cuts, notes)
	if !changed {
		return nil
	}
	return writeCutsMeta(dir, m)
}
