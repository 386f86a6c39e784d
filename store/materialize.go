package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// baseSeq returns the first segment of a disk's journal that base.img does
// not hold. Nothing is merged yet, so it is 0; retention will record it.
func baseSeq(dir string) uint64 { return 0 }

// Materialize writes every disk of the machine as it was at a listed point
// into outDir/<disk>.img (raw, sparse, of the disk's size at the point),
// creating outDir if needed. An unknown or unlisted point is an error that
// wraps ErrNotFound. It never overwrites a file: an existing image is an
// error that wraps fs.ErrExist. On error it removes the images it made.
// Replication may go on meanwhile.
func (l *Local) Materialize(ctx context.Context, machine, pointID, outDir string) (imgs []Image, err error) {
	if err := l.checkMachine(machine); err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	pts, cuts, err := l.points(machine)
	if err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	var pt *Point
	for i := range pts {
		if pts[i].ID == pointID {
			pt = &pts[i]
			break
		}
	}
	if pt == nil {
		return nil, fmt.Errorf("materialize: point %q of machine %s: %w", pointID, machine, ErrNotFound)
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

// materializeDisk writes the disk at the cut c into outDir/<disk>.img.
func (l *Local) materializeDisk(ctx context.Context, machine, disk string, c cutEntry, outDir string) (img Image, err error) {
	locks := l.locks(machine, disk)
	locks.journal.RLock()
	defer locks.journal.RUnlock()
	dir := l.diskDir(machine, disk)
	if c.Size <= 0 {
		return Image{}, fmt.Errorf("cut list: size %d at the cut", c.Size)
	}
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
	base, err := os.Open(filepath.Join(dir, baseImg))
	if err != nil {
		return Image{}, fmt.Errorf("open base image: %w", err)
	}
	err = copySparse(out, base, c.Size)
	base.Close()
	if err != nil {
		return Image{}, err
	}
	for seq := baseSeq(dir); seq <= c.Seq; seq++ {
		stop := (*cutEntry)(nil)
		if seq == c.Seq {
			stop = &c
		}
		if err := replay(ctx, out, filepath.Join(dir, journalDir, hrlfmt.SegmentName(seq)), machine, disk, seq, c.Size, stop); err != nil {
			return Image{}, err
		}
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

// replay applies the journal segment at path to img; when stop is not nil,
// only the records before stop's cut record, which must be there.
func replay(ctx context.Context, img *os.File, path, machine, disk string, seq uint64, size int64, stop *cutEntry) error {
	r, err := hrlfmt.OpenSegment(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer r.Close()
	if err := checkHeader(r.Header(), machine, disk, seq); err != nil {
		return fmt.Errorf("journal segment %s: %w", path, err)
	}
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			if stop != nil {
				return fmt.Errorf("journal segment %s: no cut record at offset %d", path, stop.Pos)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if stop != nil && rec.Pos >= stop.Pos {
			if rec.Pos != stop.Pos || rec.Type != hrlfmt.RecCut || rec.Cut.PointID != stop.ID {
				return fmt.Errorf("journal segment %s: no cut %q at offset %d", path, stop.ID, stop.Pos)
			}
			return nil
		}
		if err := applyRecord(img, rec, size); err != nil {
			return fmt.Errorf("journal segment %s: record %d at offset %d: %w", path, i, rec.Pos, err)
		}
	}
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
