package windows

import (
	"io"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// SweepBlock is the granularity of the verification sweep.
const SweepBlock = 1 << 20

// Sweep is the background verification of a volume: it hashes allocated
// blocks of the snapshot, a budget of bytes per cut, and compares each
// with its hash of the previous pass. A block whose hash changed while no
// cut reported a change in it was written behind the journal's back (a
// raw write to the volume, clusters freed and reused within one cut): it
// becomes a dirty extent and counts as a miss. A block's first pass only
// records its hash: a change before it is not caught by the sweep.
type Sweep struct {
	// Hashes of the blocks at their last pass, by block number (0: not
	// hashed yet, or free).
	Hashes []uint64
	// Cursor is the volume offset the next Step starts at.
	Cursor int64
	// reported: blocks some cut reported dirty since their last pass.
	reported tracker.Set
	// Misses counts the blocks the sweep found changed unreported.
	Misses uint64
}

// Reported tells the sweep what a cut reported dirty (volume ranges).
func (s *Sweep) Reported(rs []tracker.Range) {
	for _, r := range rs {
		s.reported.Add(r.Off, r.Len)
	}
}

// Step hashes up to budget bytes of allocated blocks from the cursor,
// reading from snap (never the live volume), and returns the blocks that
// changed since their last pass (a block a cut reported in part is
// dirty whole, since the change may lie beside the report; one no cut
// touched counts as a miss). It wraps around at the end of the volume.
func (s *Sweep) Step(snap io.ReaderAt, l Layout, bm *Bitmap, budget int64) ([]tracker.Range, error) {
	nblocks := (l.Size + SweepBlock - 1) / SweepBlock
	if int64(len(s.Hashes)) != nblocks {
		h := make([]uint64, nblocks)
		copy(h, s.Hashes)
		s.Hashes = h
	}
	var dirty []tracker.Range
	buf := make([]byte, SweepBlock)
	for done, visited := int64(0), int64(0); done < budget && visited < nblocks; visited++ {
		if s.Cursor >= l.Size || s.Cursor < 0 {
			s.Cursor = 0
		}
		b := s.Cursor / SweepBlock
		off := b * SweepBlock
		n := min(SweepBlock, l.Size-off)
		s.Cursor = off + n
		if !anyUsed(bm, l, off, n) {
			s.Hashes[b] = 0
			continue
		}
		h, err := hashAt(snap, buf[:n], off)
		if err != nil {
			return dirty, err
		}
		h |= 1 // never 0, which means "not hashed"
		done += n
		if old := s.Hashes[b]; old != 0 && old != h {
			// Changed. If a cut reported part of it, the change may be
			// elsewhere in the block: dirty whole all the same, but not
			// a miss.
			dirty = append(dirty, tracker.Range{Off: off, Len: n})
			if !s.reported.Overlaps(off, n) {
				s.Misses++
			}
		}
		s.Hashes[b] = h
		s.reported.Remove(off, n)
	}
	return dirty, nil
}

// anyUsed reports whether a cluster of [off, off+n) is in use.
func anyUsed(bm *Bitmap, l Layout, off, n int64) bool {
	if bm == nil {
		return true
	}
	for c := off / l.ClusterSize; c*l.ClusterSize < off+n; c++ {
		if bm.Used(c) {
			return true
		}
	}
	return false
}
