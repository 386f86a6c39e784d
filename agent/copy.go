package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// The read path of a round: a small pipeline per disk.
//
// The ranges a round took are cut into chunks of at most maxRead bytes.
// Up to copySlots chunks (copyBytes bytes) are in flight at once, each in
// its own goroutine and slot (an aligned read buffer and a record batch): it reads the chunk
// with O_DIRECT, records when the read finished (ReadDone, for the taint
// check of the next cut), fetches the replica's hashes in resync, and
// encodes the chunk's ZERO and DATA records (zero detection, lz4) into the
// slot's batch. The calling goroutine appends the batches to the journal
// strictly in chunk order, so a round's records are in the same order as
// when everything ran one step after another.
//
// Nothing here changes when a read may happen: round() calls it only after
// tracker.WaitCompleted, so every write the round's reads cover has
// completed before the first read is issued; several reads in flight only
// overlap those reads with each other and with compression. Each chunk's
// completion time is its own, so a change queued before it finished still
// taints it.

// copySlots is how many chunks may be read or encoded at once per disk,
// and copyBytes how many bytes they may hold between them (the first chunk
// always goes): 64 KiB extents of a random workload get up to 8 reads in
// flight, the 1 MiB chunks of a sync 4. (16 slots peaked at 69.7 MiB of
// agent memory behind a 100 MB/s churn; the target is 64 MiB.) A slot keeps its memory (a read
// buffer touched up to the largest chunk it read, a batch as large as its
// largest chunk's records) for the next round; free slots are reused last
// in, first out, so a sync's large chunks grow only the few slots it keeps
// busy and the agent's memory stays bounded by about 2 x copyBytes plus
// copySlots small buffers.
const (
	copySlots = 8
	copyBytes = 4 << 20
)

// copyParallel is how many of the copySlots chunks may be in flight at
// once (tests set it). It was 1 for a while: TestCrashConsistentPoints
// failed 2 of 5 runs with 8 reads in flight; the cause was the round
// beginning before the consumer had observed the cut's changes
// (waitObserved), and with that fixed it passed 12 of 12 with 8.
var copyParallel = copySlots

// bigChunk is the size above which a chunk makes its slot "big"; at most
// maxBig slots keep the memory of a big chunk between chunks, the others
// give it back when freed (measured: with every slot keeping 1 MiB chunks'
// memory, the agent reached 84 MiB behind a 100 MB/s churn on tmpfs).
const (
	bigChunk = 256 << 10
	maxBig   = copyBytes / maxRead
)

// copySlot is the memory of one chunk in flight.
type copySlot struct {
	buf   []byte // maxRead bytes, page aligned (newReadBuf), for O_DIRECT
	batch *hrlfmt.Batch
	big   bool // keeps the memory of a big chunk
}

// copier holds the slots of one disk, reused round after round.
type copier struct {
	mu       sync.Mutex
	cond     sync.Cond // signalled when a slot is freed
	free     []*copySlot
	all      []*copySlot
	inflight int64 // bytes of the chunks holding slots
	big      int   // slots with big set
}

func newCopier(diskSize int64) (*copier, error) {
	c := &copier{}
	c.cond.L = &c.mu
	for range min(copySlots, max(1, copyParallel)) {
		buf, err := newReadBuf(maxRead)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("read buffer: %w", err)
		}
		s := &copySlot{buf: buf, batch: hrlfmt.NewBatch(diskSize)}
		c.all = append(c.all, s)
		c.free = append(c.free, s)
	}
	return c, nil
}

// acquire waits for a free slot and room for n more bytes in flight, or
// for ctx to end (wake must be registered with context.AfterFunc).
func (c *copier) acquire(ctx context.Context, n int64) (*copySlot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.free) == 0 || c.inflight > 0 && c.inflight+n > copyBytes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.cond.Wait()
	}
	s := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.inflight += n
	return s, nil
}

// release gives back a slot that held a chunk of n bytes; beyond maxBig
// slots, the memory of a big chunk is given back to the system.
func (c *copier) release(s *copySlot, n int64) {
	c.mu.Lock()
	if n > bigChunk && !s.big {
		if c.big < maxBig {
			s.big = true
			c.big++
		} else {
			s.batch.Free()
			dropReadBuf(s.buf)
		}
	}
	c.free = append(c.free, s)
	c.inflight -= n
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wake wakes acquire to notice that its context ended.
func (c *copier) wake() {
	// Taking the lock orders this wake-up after a waiter that checked its
	// context under it and is about to Wait.
	c.mu.Lock()
	c.mu.Unlock() //lint:ignore SA2001 the empty section is the point: see above
	c.cond.Broadcast()
}

func (c *copier) close() {
	for _, s := range c.all {
		freeReadBuf(s.buf)
	}
	c.all, c.free = nil, nil
}

// chunk is one read of the pipeline: aligned, at most maxRead bytes.
type chunk struct{ off, n int64 }

// copyJob is a chunk in flight and what became of it.
type copyJob struct {
	chunk
	slot       *copySlot
	sent, same int64 // bytes encoded as DATA, bytes equal to the replica
	err        error
	done       chan struct{}
}

// chunks cuts ranges into the reads of the pipeline: aligned to the
// device, widened to whole hash blocks in resync (compare), split at
// maxRead.
func chunks(dev *blockDev, size int64, ranges []tracker.Range, compare bool) []chunk {
	var out []chunk
	for _, rg := range ranges {
		off, n := dev.alignRange(rg.Off, rg.Len)
		if compare {
			off = off / hashBlock * hashBlock
			n = min((rg.End()+hashBlock-1)/hashBlock*hashBlock, size) - off
		}
		for n > 0 {
			k := min(n, maxRead)
			out = append(out, chunk{off, k})
			off += k
			n -= k
		}
	}
	return out
}

// copyRanges reads the ranges a round took and journals them, with
// several reads in flight (see above). In resync, blocks equal to the
// replica's are left out. On an error, everything not journaled is pending
// again.
func (a *Agent) copyRanges(ctx context.Context, d *disk, ranges []tracker.Range) error {
	if len(ranges) == 0 {
		return nil
	}
	if d.cp == nil {
		cp, err := newCopier(d.size)
		if err != nil {
			a.mu.Lock()
			for _, rg := range ranges {
				a.rounds.MarkPending(d.name, rg.Off, rg.Len)
			}
			a.mu.Unlock()
			return err
		}
		d.cp = cp
	}
	compare := d.state == StateResync
	protected := d.state == StateProtected
	gen := a.readGen
	cs := chunks(d.dev, d.size, ranges, compare)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(ctx, d.cp.wake)()
	order := make(chan *copyJob, copySlots)
	go func() {
		defer close(order)
		for _, c := range cs {
			s, err := d.cp.acquire(ctx, c.n)
			if err != nil {
				return
			}
			j := &copyJob{chunk: c, slot: s, done: make(chan struct{})}
			go func() {
				defer close(j.done)
				j.err = a.fill(ctx, d, j, gen, compare)
			}()
			order <- j
		}
	}()

	var firstErr error
	journaled := 0 // chunks journaled, in order
	for j := range order {
		<-j.done
		if firstErr == nil {
			firstErr = j.err
			if firstErr == nil {
				if err := d.w.WriteBatch(j.slot.batch); err != nil {
					firstErr = fmt.Errorf("journal of %s: %w", d.name, err)
				}
			}
			if firstErr == nil {
				journaled++
				a.noteJournaled(d, j.off, j.n)
				crashPoint("journaled")
				d.unsealed.Add(j.slot.batch.DataBytes())
				a.mu.Lock() // Status reads them
				d.sent += j.sent
				d.same += j.same
				if !protected {
					d.done = min(d.total, d.done+j.n)
				}
				a.mu.Unlock()
			} else {
				cancel() // stop issuing reads; drain what is in flight
			}
		}
		d.cp.release(j.slot, j.n)
	}
	if firstErr == nil && journaled < len(cs) {
		firstErr = ctx.Err() // the parent context ended
		if firstErr == nil {
			firstErr = errors.New("read pipeline stopped early")
		}
	}
	if firstErr != nil {
		// Give back what was not journaled: it stays to be read.
		a.mu.Lock()
		for _, c := range cs[journaled:] {
			a.rounds.MarkPending(d.name, c.off, c.n)
		}
		a.mu.Unlock()
	}
	return firstErr
}

// fill reads a job's chunk, notes when the read finished, and encodes its
// records into the job's batch.
func (a *Agent) fill(ctx context.Context, d *disk, j *copyJob, gen uint64, compare bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, err := readInto(d.dev, j.slot.buf, j.off, j.n)
	if err != nil {
		return err
	}
	// Dated by the tracker's clock: a change queued after this is stamped
	// no earlier, so it cannot taint the read.
	done := a.readTime()
	a.mu.Lock()
	a.rounds.ReadDone(d.name, j.off, j.n, done)
	a.mu.Unlock()
	var remote [][32]byte
	if compare {
		if remote, err = a.cfg.Client.Hashes(ctx, d.name, j.off, j.n, hashBlock); err != nil {
			return fmt.Errorf("replica hashes of %s: %w", d.name, err)
		}
	}
	j.slot.batch.Reset()
	// One record per 64 KiB block at most: size the batch once.
	j.slot.batch.Grow(int(j.n) + (int(j.n)/(64<<10)+1)*(hrlfmt.RecordHeaderSize+32))
	j.sent, j.same, err = encodeChunk(j.slot.batch, j.off, buf, gen, remote)
	return err
}

// encodeChunk encodes a read buffer as ZERO and DATA records (64 KiB
// blocks of zeros become ZERO records, runs of other blocks one DATA
// record); with remote hashes, blocks equal to the replica's are left out.
// It returns the bytes encoded as DATA and the bytes found equal.
func encodeChunk(b *hrlfmt.Batch, off int64, buf []byte, gen uint64, remote [][32]byte) (sent, same int64, err error) {
	const blk = 64 << 10
	start := -1 // start of a run of data blocks
	flushData := func(end int) error {
		if start < 0 {
			return nil
		}
		err := b.Data(off+int64(start), gen, buf[start:end])
		sent += int64(end - start)
		start = -1
		return err
	}
	for i := 0; i < len(buf); i += blk {
		j := min(i+blk, len(buf))
		blkData := buf[i:j]
		if remote != nil {
			idx := i / hashBlock
			if idx < len(remote) && sha256.Sum256(blkData) == remote[idx] {
				same += int64(len(blkData))
				if err := flushData(i); err != nil {
					return sent, same, err
				}
				continue
			}
		}
		if fsutil.IsZero(blkData) {
			if err := flushData(i); err != nil {
				return sent, same, err
			}
			if err := b.Zero(off+int64(i), int64(len(blkData)), gen, hrlfmt.ZeroZeroed); err != nil {
				return sent, same, err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return sent, same, flushData(len(buf))
}

// readInto reads [off, off+n) of the device (aligned, n <= maxRead) with
// O_DIRECT into buf, an aligned buffer of at least n bytes. Concurrent
// calls with different buffers are safe (pread).
func readInto(b *blockDev, buf []byte, off, n int64) ([]byte, error) {
	if n > maxRead || int64(len(buf)) < n || off%b.align != 0 || n%b.align != 0 && off+n != b.size {
		return nil, fmt.Errorf("read %s [%d,+%d): unaligned", b.path, off, n)
	}
	got := 0
	for int64(got) < n {
		k, err := b.readAt(buf[got:n], off+int64(got))
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", b.path, off+int64(got), err)
		}
		if k == 0 {
			return nil, fmt.Errorf("read %s at %d: unexpected end of device", b.path, off+int64(got))
		}
		got += k
	}
	return buf[:n], nil
}

// sealAge is how old the open segment of a disk must be to be sealed at
// the end of a round: SegmentAge while the disk has changes left to read,
// half of it once the round has read everything pending. Sealing then
// ships the round's changes without waiting for the full age (RPO lag),
// while a floor keeps a disk with a trickle of writes from sealing a
// segment every round (each costs fsyncs on both sides and a file in the
// server's journal).
func (a *Agent) sealAge(d *disk) time.Duration {
	a.mu.Lock()
	pending := a.rounds.Pending(d.name)
	a.mu.Unlock()
	if pending > 0 {
		return a.cfg.SegmentAge
	}
	return a.cfg.SegmentAge / 2
}
