package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// Materialize writes every disk of the machine as it was at a listed point
// into outDir/<disk>.img (raw, sparse, of the disk's size at the point),
// creating outDir if needed. An unknown or unlisted point is an error that
// wraps ErrNotFound; a point retention dropped (Materializable false) one
// that wraps ErrPruned. It never overwrites a file: an existing image is
// an error that wraps fs.ErrExist. On error it removes the images it made.
// Replication may go on meanwhile; Prune waits for it, and it for Prune.
func (l *Local) Materialize(ctx context.Context, machine, pointID, outDir string) (imgs []Image, err error) {
	if err := l.checkMachine(machine); err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	pt, cuts, unlock, err := l.lockPoint(machine, pointID)
	if err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	defer unlock()
	if !pt.Materializable {
		return nil, fmt.Errorf("materialize: point %q of machine %s: %w", pointID, machine, ErrPruned)
	}
	if err := mkdirAllSync(outDir); err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	for _, d := range pt.Disks {
		p := filepath.Join(outDir, d+".img")
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("materialize: %s: %w", p, fs.ErrExist)
		}
	}
	defer func() {
		if err != nil {
			for _, img := range imgs {
				os.Remove(img.Path)
			}
			imgs = nil
		}
	}()
	for _, d := range pt.Disks {
		img, err := l.materializeDisk(ctx, machine, d, cuts[d][pointID], outDir)
		if err != nil {
			return imgs, fmt.Errorf("materialize %s/%s at %s: %w", machine, d, pointID, err)
		}
		imgs = append(imgs, img)
	}
	if err := syncDir(outDir); err != nil {
		return imgs, fmt.Errorf("materialize: %w", err)
	}
	return imgs, nil
}

// lockPoint finds a listed point and takes the journal read lock of each
// of its disks, in name order, so that no Prune merges or deletes anything
// of them until unlock; it looks the point up again under the locks, so
// that what it returns (its cuts, whether it is materializable) holds
// until unlock.
func (l *Local) lockPoint(machine, pointID string) (Point, map[string]map[string]cutEntry, func(), error) {
	find := func() (*Point, map[string]map[string]cutEntry, error) {
		pts, cuts, err := l.points(machine)
		if err != nil {
			return nil, nil, err
		}
		for i := range pts {
			if pts[i].ID == pointID {
				return &pts[i], cuts, nil
			}
		}
		return nil, nil, fmt.Errorf("point %q of machine %s: %w", pointID, machine, ErrNotFound)
	}
	pt, _, err := find()
	if err != nil {
		return Point{}, nil, nil, err
	}
	// SetDisks may change the disk set meanwhile: then lock the new set.
	for range 3 {
		var held []*sync.RWMutex
		for _, d := range pt.Disks {
			m := &l.locks(machine, d).journal
			m.RLock()
			held = append(held, m)
		}
		unlock := func() {
			for _, m := range held {
				m.RUnlock()
			}
		}
		again, cuts, err := find()
		if err != nil {
			unlock()
			return Point{}, nil, nil, err
		}
		if slices.Equal(again.Disks, pt.Disks) {
			return *again, cuts, unlock, nil
		}
		unlock()
		pt = again
	}
	return Point{}, nil, nil, fmt.Errorf("point %q of machine %s: the disk set keeps changing", pointID, machine)
}

// materializeDisk writes the disk at the cut c into outDir/<disk>.img. The
// caller holds the disk's journal read lock.
//
// From the extent indexes of the segments between the base and the cut,
// it works out for each byte the newest DATA or ZERO record up to the cut
// that covers it (its piece). Then it starts the image one of two ways:
//
//   - replay: a sparse copy of base.img (a clone where the file system
//     shares extents), then every piece: the holes of the ZERO records
//     punched, the bytes of the DATA records written. The cost follows
//     the changes between the base and the cut (plus, without reflink,
//     the copy of the base's data).
//   - rewind, where the file system shares extents and it writes less: a
//     clone of current.img, the replica after every segment in the
//     journal, then only the bytes that records after the cut changed
//     are put back as they were at the cut: from their piece, or from
//     base.img where no record up to the cut covers them. The cost
//     follows the changes after the cut; the newest point is a clone.
//
// A byte that a later record overwrites is neither read nor written.
// Records are read in file order, contiguous ones in one read; each goes
// through hrlfmt's checks and must be the record its index names.
func (l *Local) materializeDisk(ctx context.Context, machine, disk string, c cutEntry, outDir string) (img Image, err error) {
	dir := l.diskDir(machine, disk)
	jdir := filepath.Join(dir, journalDir)
	if c.Size <= 0 {
		return Image{}, fmt.Errorf("cut list: size %d at the cut", c.Size)
	}
	first, err := readBaseSeq(dir)
	if err != nil {
		return Image{}, err
	}
	if c.Seq < first {
		return Image{}, fmt.Errorf("cut in segment %d, merged into the base (up to %d): %w", c.Seq, first, ErrPruned)
	}
	// The extents of the journal from the base to the cut, oldest first,
	// and those of the cut's segment after the cut.
	var (
		exts    []indexEntry
		extSeq  []uint64
		tail    []indexEntry
		hdrLens = make([]int64, 0, c.Seq-first+1)
	)
	for seq := first; seq <= c.Seq; seq++ {
		if err := ctx.Err(); err != nil {
			return Image{}, err
		}
		x, err := loadIndex(jdir, machine, disk, seq, func(f *os.File) io.ReaderAt { return l.counted(f, disk, seq) })
		if err != nil {
			return Image{}, err
		}
		for k, e := range x.Entries {
			if seq == c.Seq && e.Pos >= c.Pos {
				tail = x.Entries[k:]
				break
			}
			if e.Offset > c.Size-e.Length {
				return Image{}, fmt.Errorf("journal segment %d: extent [%d, +%d) beyond the image's %d bytes", seq, e.Offset, e.Length, c.Size)
			}
			exts = append(exts, e)
			extSeq = append(extSeq, seq)
		}
		hdrLens = append(hdrLens, x.HeaderLen)
	}
	pieces := newestPieces(exts)

	out, err := os.CreateTemp(outDir, "."+disk+".img.tmp-*")
	if err != nil {
		return Image{}, err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	need, rewound := pieces, false
	if l.rewind != rewindNever && (l.reflink || l.rewind == rewindAlways) {
		if need, rewound, err = l.startRewound(ctx, out, machine, disk, c, exts, pieces, tail); err != nil {
			return Image{}, err
		}
	}
	if !rewound {
		need = pieces
		base, err := os.Open(filepath.Join(dir, baseImg))
		if err != nil {
			return Image{}, fmt.Errorf("open base image: %w", err)
		}
		err = copySparse(out, base, c.Size)
		base.Close()
		if err != nil {
			return Image{}, err
		}
	}
	if l.pathHook != nil {
		l.pathHook(disk, rewound)
	}
	for i, e := range exts {
		if e.Type != hrlfmt.RecZero {
			continue
		}
		for _, p := range need[i] {
			if err := punchHole(out, p.lo, p.hi-p.lo); err != nil {
				return Image{}, fmt.Errorf("zero image: %w", err)
			}
		}
	}
	for i := 0; i <= len(exts); {
		// exts[i:j] are the extents of one segment, in file order; the
		// segment of the cut is opened even without any, to check the cut.
		seq := c.Seq
		if i < len(exts) {
			seq = extSeq[i]
		}
		j := i
		var want []int
		for ; j < len(exts) && extSeq[j] == seq; j++ {
			if exts[j].Type == hrlfmt.RecData && len(need[j]) > 0 {
				want = append(want, j)
			}
		}
		if len(want) > 0 || seq == c.Seq {
			s, err := l.openSegment(jdir, machine, disk, seq, hdrLens[seq-first])
			if err != nil {
				return Image{}, err
			}
			err = s.writeNewest(ctx, out, exts, need, want)
			if err == nil && seq == c.Seq {
				err = s.checkCut(c)
			}
			s.f.Close()
			if err != nil {
				return Image{}, err
			}
		}
		if seq == c.Seq {
			break
		}
		i = j
	}
	if err := out.Sync(); err != nil {
		return Image{}, fmt.Errorf("sync image: %w", err)
	}
	if err := out.Close(); err != nil {
		return Image{}, fmt.Errorf("close image: %w", err)
	}
	path := filepath.Join(outDir, disk+".img")
	if err := renameNoReplace(out.Name(), path); err != nil {
		return Image{}, err
	}
	return Image{Disk: disk, Path: path, Size: c.Size}, nil
}

// countedReaderAt reports every read to a test hook.
type countedReaderAt struct {
	f    *os.File
	hook func(off int64, n int)
}

func (c countedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	if n > 0 {
		c.hook(off, n)
	}
	return n, err
}

// counted returns f, whose reads Local.readHook sees when set.
func (l *Local) counted(f *os.File, disk string, seq uint64) io.ReaderAt {
	if l.readHook == nil {
		return f
	}
	return countedReaderAt{f: f, hook: func(off int64, n int) { l.readHook(disk, seq, off, n) }}
}

// journalSeg is a journal segment open for reading records at known
// positions: hrlfmt reads, from its header record followed by the bytes of
// the records wanted, exactly what it would read from the segment, and
// checks every record it returns.
type journalSeg struct {
	path string
	f    *os.File
	ra   io.ReaderAt
	hdr  []byte // the header record
}

// openSegment opens journal segment seq, whose header record is hdrLen
// bytes, and checks the header.
func (l *Local) openSegment(jdir, machine, disk string, seq uint64, hdrLen int64) (*journalSeg, error) {
	path := filepath.Join(jdir, hrlfmt.SegmentName(seq))
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	s := &journalSeg{path: path, f: f, ra: l.counted(f, disk, seq), hdr: make([]byte, hdrLen)}
	if _, err := s.ra.ReadAt(s.hdr, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal segment %s: read header: %w", path, err)
	}
	r, err := hrlfmt.NewReader(bytes.NewReader(s.hdr))
	if err == nil && r.Offset() != hdrLen {
		err = fmt.Errorf("header record of %d bytes, the extent index says %d", r.Offset(), hdrLen)
	}
	if err == nil {
		err = checkHeader(r.Header(), machine, disk, seq)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal segment %s: %w", path, err)
	}
	return s, nil
}

// records returns a reader of the records in [start, end) of the segment.
func (s *journalSeg) records(start, end int64) (*hrlfmt.Reader, error) {
	r, err := hrlfmt.NewReader(io.MultiReader(bytes.NewReader(s.hdr), io.NewSectionReader(s.ra, start, end-start)))
	if err != nil {
		return nil, s.relocate(err, start)
	}
	return r, nil
}

// relocate makes an error of a reader from records(start, …) name the
// segment and the record's offset in it.
func (s *journalSeg) relocate(err error, start int64) error {
	var fe *hrlfmt.FormatError
	if errors.As(err, &fe) && fe.Offset >= int64(len(s.hdr)) {
		return &hrlfmt.FormatError{File: s.path, Offset: start + fe.Offset - int64(len(s.hdr)), Err: fe.Err}
	}
	return fmt.Errorf("journal segment %s: %w", s.path, err)
}

// writeNewest reads the DATA records exts[k] for k in want (in file order)
// and writes their pieces to img. Records that follow each other in the
// segment are read together.
func (s *journalSeg) writeNewest(ctx context.Context, img *os.File, exts []indexEntry, pieces [][]span, want []int) error {
	for a := 0; a < len(want); {
		b := a + 1
		for b < len(want) && exts[want[b]].Pos == exts[want[b-1]].Pos+exts[want[b-1]].Size {
			b++
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		start, last := exts[want[a]].Pos, exts[want[b-1]]
		r, err := s.records(start, last.Pos+last.Size)
		if err != nil {
			return err
		}
		for _, k := range want[a:b] {
			e := exts[k]
			rec, err := r.Next()
			if err != nil {
				return s.relocate(err, start)
			}
			if pos := start + rec.Pos - int64(len(s.hdr)); pos != e.Pos || rec.Type != e.Type || rec.Offset != e.Offset || rec.Length != e.Length {
				return fmt.Errorf("journal segment %s: the record at offset %d is not the one its extent index names", s.path, e.Pos)
			}
			for _, p := range pieces[k] {
				if err := writeFull(img, rec.Data[p.lo-e.Offset:p.hi-e.Offset], p.lo); err != nil {
					return fmt.Errorf("write image: %w", err)
				}
			}
		}
		a = b
	}
	return nil
}

// cutRecordFixed is the size of a CUT record without its point id
// (FORMAT.md §5.3: a 20-byte record header, 20 bytes of payload).
const cutRecordFixed = hrlfmt.RecordHeaderSize + 20

// checkCut checks that the record at c.Pos is the CUT of c's point.
func (s *journalSeg) checkCut(c cutEntry) error {
	r, err := s.records(c.Pos, c.Pos+cutRecordFixed+int64(len(c.ID)))
	if err != nil {
		return err
	}
	rec, err := r.Next()
	if err != nil {
		return s.relocate(err, c.Pos)
	}
	if rec.Type != hrlfmt.RecCut || rec.Cut.PointID != c.ID {
		return fmt.Errorf("journal segment %s: no cut %q at offset %d", s.path, c.ID, c.Pos)
	}
	return nil
}

// renameNoReplace renames from to to, failing with an error that wraps
// fs.ErrExist when to exists.
func renameNoReplace(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		return os.Remove(from)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", to, fs.ErrExist)
	}
	// No hard links here: check, then rename.
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s: %w", to, fs.ErrExist)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("rename image: %w", err)
	}
	return nil
}

// MaxHashBlocks bounds the number of blocks one Hashes call hashes.
const MaxHashBlocks = 1 << 20

// Hashes returns the SHA-256 of each block of the disk's replica (every
// applied segment) in [off, off+n): block i covers [off+i*block,
// min(off+(i+1)*block, off+n)), so only the last block may be short. Bytes
// beyond the end of the replica hash as zeros; a disk known from SetDisks
// but never applied is all zeros. An unknown disk is an error that wraps
// ErrNotFound; more than MaxHashBlocks blocks is an error.
func (l *Local) Hashes(ctx context.Context, machine, disk string, off, n, block int64) ([][32]byte, error) {
	if err := CheckName(disk); err != nil {
		return nil, fmt.Errorf("hashes: disk: %w", err)
	}
	if err := l.checkMachine(machine); err != nil {
		return nil, fmt.Errorf("hashes: %w", err)
	}
	switch {
	case off < 0 || n < 0 || block <= 0:
		return nil, fmt.Errorf("hashes: bad range [%d, +%d) or block %d", off, n, block)
	case off > (1<<63-1)-n:
		return nil, fmt.Errorf("hashes: range [%d, +%d) overflows", off, n)
	case (n+block-1)/block > MaxHashBlocks:
		return nil, fmt.Errorf("hashes: %d blocks, more than %d", (n+block-1)/block, MaxHashBlocks)
	}
	locks := l.locks(machine, disk)
	locks.cur.RLock()
	defer locks.cur.RUnlock()
	f, err := os.Open(filepath.Join(l.diskDir(machine, disk), currentImg))
	if errors.Is(err, fs.ErrNotExist) {
		known, kerr := l.knownDisk(machine, disk)
		if kerr != nil {
			return nil, fmt.Errorf("hashes: %w", kerr)
		}
		if !known {
			return nil, fmt.Errorf("hashes: disk %s/%s: %w", machine, disk, ErrNotFound)
		}
		f = nil
	} else if err != nil {
		return nil, fmt.Errorf("hashes: %w", err)
	}
	var size int64
	if f != nil {
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("hashes: %w", err)
		}
		size = fi.Size()
	}
	zeroSums := make(map[int64][32]byte)
	var buf []byte
	out := make([][32]byte, 0, (n+block-1)/block)
	for start := off; start < off+n; start += min(block, off+n-start) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("hashes: %w", err)
		}
		end := start + min(block, off+n-start)
		dataEnd := min(end, size)
		if start < dataEnd {
			d, err := nextData(f, start, dataEnd)
			if err != nil {
				return nil, fmt.Errorf("hashes: %w", err)
			}
			if d >= dataEnd {
				dataEnd = start // a hole
			}
		}
		if start >= dataEnd {
			s, ok := zeroSums[end-start]
			if !ok {
				s = zeroSum(end - start)
				zeroSums[end-start] = s
			}
			out = append(out, s)
			continue
		}
		h := sha256.New()
		if buf == nil {
			buf = make([]byte, min(block, 1<<20))
		}
		for p := start; p < dataEnd; {
			k := min(int64(len(buf)), dataEnd-p)
			if _, err := f.ReadAt(buf[:k], p); err != nil {
				return nil, fmt.Errorf("hashes: read replica: %w", err)
			}
			h.Write(buf[:k])
			p += k
		}
		for z := end - dataEnd; z > 0; {
			k := min(z, int64(len(zeroBuf)))
			h.Write(zeroBuf[:k])
			z -= k
		}
		var s [32]byte
		h.Sum(s[:0])
		out = append(out, s)
	}
	return out, nil
}

// zeroSum returns the SHA-256 of n zero bytes.
func zeroSum(n int64) [32]byte {
	h := sha256.New()
	for n > 0 {
		k := min(n, int64(len(zeroBuf)))
		h.Write(zeroBuf[:k])
		n -= k
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// knownDisk reports whether SetDisks named the disk.
func (l *Local) knownDisk(machine, disk string) (bool, error) {
	m, _, err := l.readDisksMeta(machine)
	if err != nil {
		return false, err
	}
	for _, d := range m.Disks {
		if d.Name == disk {
			return true, nil
		}
	}
	return false, nil
}

// rewindMode overrides how Materialize starts an image.
type rewindMode int

const (
	// rewindAuto rewinds a clone of the replica where the file system
	// shares extents and that writes less than replaying from the base.
	rewindAuto rewindMode = iota
	// rewindNever always replays from the base.
	rewindNever
	// rewindAlways always rewinds, copying the replica where it cannot
	// clone it (tests: the rewind on any file system).
	rewindAlways
)

// startRewound starts the image out, an empty file, as the replica
// rewound to the cut c (see materializeDisk) and returns what of pieces
// is still to be written: the parts that records after the cut changed.
// exts are the extents from the base to the cut and pieces their newest
// parts, tail the extents of the cut's segment after the cut. It returns
// false, leaving out untouched, where replaying from the base would write
// no more, where the replica cannot be cloned, or where an index of a
// segment after the cut cannot be read (the replay does not need them;
// Apply and Prune report a damaged segment).
func (l *Local) startRewound(ctx context.Context, out *os.File, machine, disk string, c cutEntry, exts []indexEntry, pieces [][]span, tail []indexEntry) ([][]span, bool, error) {
	dir := l.diskDir(machine, disk)
	jdir := filepath.Join(dir, journalDir)
	var forward int64
	for _, ps := range pieces {
		forward += spanBytes(ps)
	}
	seqs, err := laterSegments(jdir, c.Seq)
	if err != nil {
		return nil, false, err
	}
	later, err := l.laterSpans(ctx, jdir, machine, disk, c.Size, tail, seqs)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, nil
	}
	if l.rewind != rewindAlways && spanBytes(later) >= forward {
		return nil, false, nil
	}
	// The clone and the list of the segments whose records it may hold
	// are taken together under the replica's read lock: Apply writes the
	// records of a segment into current.img only once the segment is in
	// the journal directory, and never under this lock. A segment listed
	// but not yet applied only makes more bytes to put back.
	locks := l.locks(machine, disk)
	locks.cur.RLock()
	now, err := laterSegments(jdir, c.Seq)
	if err == nil {
		err = cloneReplica(out, filepath.Join(dir, currentImg), c.Size, l.rewind == rewindAlways && !l.reflink)
	}
	locks.cur.RUnlock()
	if errors.Is(err, errNoReflink) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !slices.Equal(now, seqs) {
		if later, err = l.laterSpans(ctx, jdir, machine, disk, c.Size, tail, now); err != nil {
			return nil, false, err
		}
	}
	if err := out.Truncate(c.Size); err != nil {
		return nil, false, fmt.Errorf("copy replica: %w", err)
	}
	for _, u := range later {
		if err := punchHole(out, u.lo, u.hi-u.lo); err != nil {
			return nil, false, fmt.Errorf("rewind image: %w", err)
		}
	}
	// Where no record up to the cut covers a byte put back, it is the
	// base's byte.
	covered := make([]span, len(exts))
	for i, e := range exts {
		covered[i] = span{e.Offset, e.Offset + e.Length}
	}
	if gaps := subtractSpans(later, mergeSpans(covered)); len(gaps) > 0 {
		base, err := os.Open(filepath.Join(dir, baseImg))
		if err != nil {
			return nil, false, fmt.Errorf("open base image: %w", err)
		}
		defer base.Close()
		for _, g := range gaps {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
			if err := copyData(out, base, g.lo, g.hi); err != nil {
				return nil, false, fmt.Errorf("rewind image from the base: %w", err)
			}
		}
	}
	need := make([][]span, len(pieces))
	for i, ps := range pieces {
		need[i] = intersectSpans(ps, later)
	}
	return need, true, nil
}

// cloneReplica makes out, an empty file, a clone of the replica at path,
// which must hold at least size bytes; with copy, a copy where it cannot
// clone. An error that wraps errNoReflink leaves out untouched.
func cloneReplica(out *os.File, path string, size int64, copy bool) error {
	cur, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open replica: %w", err)
	}
	defer cur.Close()
	fi, err := cur.Stat()
	if err != nil {
		return fmt.Errorf("open replica: %w", err)
	}
	if fi.Size() < size {
		return fmt.Errorf("replica of %d bytes, the cut has %d", fi.Size(), size)
	}
	if copy {
		return copySparse(out, cur, fi.Size())
	}
	return cloneFile(out, cur)
}

// laterSegments returns the sequence numbers above after of the segments
// in the journal directory jdir, in order: applied or not yet, any whose
// records may be in current.img.
func laterSegments(jdir string, after uint64) ([]uint64, error) {
	ents, err := os.ReadDir(jdir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if len(name) != len(hrlfmt.SegmentName(0)) || !strings.HasSuffix(name, ".hrl") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".hrl"), 16, 64)
		if err != nil || hrlfmt.SegmentName(seq) != name || seq <= after {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// laterSpans returns the byte ranges below size that the extents of tail
// and of segments seqs write, merged, in order.
func (l *Local) laterSpans(ctx context.Context, jdir, machine, disk string, size int64, tail []indexEntry, seqs []uint64) ([]span, error) {
	var s []span
	add := func(es []indexEntry) {
		for _, e := range es {
			if e.Offset < size {
				s = append(s, span{e.Offset, min(e.Offset+e.Length, size)})
			}
		}
	}
	add(tail)
	for _, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x, err := loadIndex(jdir, machine, disk, seq, func(f *os.File) io.ReaderAt { return l.counted(f, disk, seq) })
		if err != nil {
			return nil, err
		}
		add(x.Entries)
	}
	return mergeSpans(s), nil
}
