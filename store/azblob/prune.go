package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/store"
)

const (
	baseBlob = "base.vhd"
	// metaMerged is the base page blob's marker: the last segment folded
	// into it.
	metaMerged = "lifeboatlastmerged"
)

// journalLock is the lock of a disk's base and set of segments: Prune
// folds and deletes under the write lock, Materialize reads under the
// read lock. It works within one process (see doc.go).
func (s *Store) journalLock(machine, disk string) *sync.RWMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := machine + "/" + disk
	if s.journals == nil {
		s.journals = make(map[string]*sync.RWMutex)
	}
	if s.journals[k] == nil {
		s.journals[k] = new(sync.RWMutex)
	}
	return s.journals[k]
}

// baseState is the base page blob's metadata.
type baseState struct {
	exists bool
	first  uint64 // first segment not in the base: last merged + 1, or 0
	size   int64  // the disk's size as far as the base holds it
}

func (s *Store) base(ctx context.Context, machine, disk string) (*pageblob.Client, baseState, error) {
	pb := s.cc.NewPageBlobClient(diskPrefix(machine, disk) + baseBlob)
	props, err := pb.GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return pb, baseState{}, nil
	}
	if err != nil {
		return nil, baseState{}, fmt.Errorf("base: %w", err)
	}
	st := baseState{exists: true}
	md := lower(props.Metadata)
	if v := md[metaMerged]; v != nil {
		n, err := strconv.ParseUint(*v, 10, 64)
		if err != nil || n == 1<<64-1 {
			return nil, st, fmt.Errorf("base metadata %s=%q: bad sequence number", metaMerged, *v)
		}
		st.first = n + 1
	}
	if v := md[metaSize]; v != nil {
		if st.size, err = strconv.ParseInt(*v, 10, 64); err != nil || st.size < 0 {
			return nil, st, fmt.Errorf("base metadata %s=%q: bad size", metaSize, *v)
		}
	}
	return pb, st, nil
}

// Prune applies a retention policy as of now (store.PlanPrune, as the
// local store does): it marks the dropped cuts in every disk's cut list
// first, then folds each disk's segments before its oldest kept cut into
// base.vhd, oldest first: the records into the base page blob, then the
// base's marker (its metadata) past the segment, then the segment and its
// index deleted. A crash before the marker moves leaves in the base part
// of a segment the journal still holds whole and every kept point replays
// (the writes are absolute); a crash after it leaves a merged segment the
// next Prune deletes. It needs the machine's lease.
func (s *Store) Prune(ctx context.Context, machine string, r store.Retention, now time.Time) (store.PruneResult, error) {
	var res store.PruneResult
	if err := s.checkMachine(ctx, machine); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := s.holdLease(ctx, machine); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	pts, cuts, err := s.points(ctx, machine)
	if err != nil || len(pts) == 0 {
		return res, err
	}
	plan, err := store.PlanPrune(pts, cuts, r, now)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	res.Dropped = plan.Dropped
	for _, d := range plan.Disks {
		if err := s.markCuts(ctx, machine, d, plan); err != nil {
			return res, fmt.Errorf("prune %s: disk %s: %w", machine, d, err)
		}
	}
	if len(plan.Kept) == 0 {
		return res, nil
	}
	for _, d := range plan.Disks {
		for {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			done, err := s.mergeNext(ctx, machine, d, plan.Until[d], &res)
			if errors.Is(err, errReaders) {
				res.Deferred = append(res.Deferred, d)
				break
			}
			if err != nil {
				return res, fmt.Errorf("prune %s: merge disk %s: %w", machine, d, err)
			}
			if done {
				break
			}
		}
	}
	return res, nil
}

// markCuts rewrites a disk's cut list for plan, on its ETag, under the
// disk's apply lock (Apply rewrites it too).
func (s *Store) markCuts(ctx context.Context, machine, disk string, plan store.PrunePlan) error {
	mu := s.diskLock(machine, disk)
	mu.Lock()
	defer mu.Unlock()
	var old store.CutList
	etag, _, err := getJSON(ctx, s.cc, cutsName(machine, disk), &old)
	if err != nil {
		return err
	}
	m, changed := store.MarkCuts(old, plan, plan.Until[disk])
	if !changed {
		return nil
	}
	_, err = putJSON(ctx, s.cc, cutsName(machine, disk), m, etag)
	return err
}

// mergeNext folds the first segment of a disk's journal into the base if
// it lies before until, and reports whether there was none to fold.
func (s *Store) mergeNext(ctx context.Context, machine, disk string, until uint64, res *store.PruneResult) (bool, error) {
	jl := s.journalLock(machine, disk)
	jl.Lock()
	defer jl.Unlock()
	if err := s.noReaders(ctx, machine); err != nil {
		return false, err
	}
	pb, st, err := s.base(ctx, machine, disk)
	if err != nil {
		return false, err
	}
	if err := s.removeMerged(ctx, machine, disk, st.first); err != nil {
		return false, err
	}
	if st.first >= until {
		return true, nil
	}
	seq := st.first
	seg, err := s.download(ctx, segmentBlob(machine, disk, seq))
	if err != nil {
		return false, fmt.Errorf("journal segment %d: %w", seq, err)
	}
	r, err := hrlfmt.NewReader(bytes.NewReader(seg))
	if err != nil {
		return false, fmt.Errorf("journal segment %d: %w", seq, err)
	}
	h := r.Header()
	if h.Machine != machine || h.Disk != disk || h.Seq != seq {
		return false, fmt.Errorf("journal segment %d: header of %s/%s segment %d", seq, h.Machine, h.Disk, h.Seq)
	}
	size := max(st.size, h.DiskSize)
	w := &pages{pb: pb}
	rst := replicaState{exists: st.exists, size: st.size}
	if err := s.sizeBlob(ctx, w, rst, machine, disk+"-base", size); err != nil {
		return false, err
	}
	for i := 0; ; i++ {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("journal segment %d: %w", seq, err)
		}
		if err := writeRecord(ctx, w, rec, size); err != nil {
			return false, fmt.Errorf("journal segment %d: record %d: %w", seq, i, err)
		}
	}
	md := map[string]*string{metaMerged: to(strconv.FormatUint(seq, 10)), metaSize: to(strconv.FormatInt(size, 10))}
	if _, err := pb.SetMetadata(ctx, md, nil); err != nil {
		return false, fmt.Errorf("set base marker: %w", err)
	}
	res.Merged++
	res.MergedBytes += int64(len(seg))
	// A reader that came while the segment was folded may have read the
	// base's old marker: it needs the segment (the next Prune deletes it).
	if err := s.noReaders(ctx, machine); err != nil {
		return false, err
	}
	if err := s.removeMerged(ctx, machine, disk, seq+1); err != nil {
		return false, err
	}
	return false, nil
}

// errReaders is noReaders' error: a materialization reads the machine.
var errReaders = errors.New("a materialization is reading the machine")

// noReaders fails with errReaders while the machine has a live reader
// (readers.go).
func (s *Store) noReaders(ctx context.Context, machine string) error {
	n, err := s.liveReaders(ctx, machine)
	if err != nil {
		return err
	}
	if n > 0 {
		return errReaders
	}
	return nil
}

// writeRecord writes a decoded DATA or ZERO record to a page blob of a
// disk of size bytes; a CUT or NOTE changes nothing.
func writeRecord(ctx context.Context, w *pages, rec hrlfmt.Record, size int64) error {
	switch rec.Type {
	case hrlfmt.RecData, hrlfmt.RecZero:
		if rec.Offset < 0 || rec.Length <= 0 || rec.Offset > size-rec.Length {
			return fmt.Errorf("extent [%d, +%d) beyond the disk's %d bytes", rec.Offset, rec.Length, size)
		}
	}
	switch rec.Type {
	case hrlfmt.RecData:
		if int64(len(rec.Data)) != rec.Length {
			return fmt.Errorf("%d bytes for a length of %d", len(rec.Data), rec.Length)
		}
		return w.write(ctx, rec.Offset, rec.Data)
	case hrlfmt.RecZero:
		return w.zero(ctx, rec.Offset, rec.Length)
	}
	return nil
}

// removeMerged deletes the journal segments and indexes before first.
func (s *Store) removeMerged(ctx context.Context, machine, disk string, first uint64) error {
	prefix := diskPrefix(machine, disk) + journalPfx
	p := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list journal: %w", err)
		}
		for _, b := range page.Segment.BlobItems {
			name := strings.TrimPrefix(*b.Name, prefix)
			seq, ok := hrlfmt.ParseSegmentName(name)
			if idx, isIdx := strings.CutSuffix(name, ".idx"); isIdx {
				seq, ok = hrlfmt.ParseSegmentName(idx + ".hrl")
			}
			if !ok || seq >= first {
				continue
			}
			if _, err := s.cc.NewBlobClient(*b.Name).Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return fmt.Errorf("remove merged segment: %w", err)
			}
		}
	}
	return nil
}

// download reads a whole blob, counting the bytes read.
func (s *Store) download(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.cc.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	s.readBytes.Add(int64(len(b)))
	return b, err
}

// copyBase writes the data of the base page blob that lies within the
// first n bytes into out, reading only its allocated page ranges (Get
// Page Ranges; never the diff variant, which Azurite lacks).
func (s *Store) copyBase(ctx context.Context, pb *pageblob.Client, out *os.File, n int64) error {
	p := pb.NewGetPageRangesPager(nil)
	buf := make([]byte, 0, MaxPutPage)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("base page ranges: %w", err)
		}
		for _, r := range page.PageList.PageRange {
			lo, hi := *r.Start, min(*r.End+1, n)
			for off := lo; off < hi; {
				k := min(hi-off, MaxPutPage)
				b := buf[:k]
				if err := readRange(ctx, pb.BlobClient(), off, b); err != nil {
					return fmt.Errorf("read base: %w", err)
				}
				s.readBytes.Add(k)
				if _, err := out.WriteAt(b, off); err != nil {
					return fmt.Errorf("write image: %w", err)
				}
				off += k
			}
		}
	}
	return nil
}

// ReadBytes is how many bytes Materialize and Prune have read from the
// store's blobs so far (journal segments and base pages).
func (s *Store) ReadBytes() int64 { return s.readBytes.Load() }
