package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Names in a disk's cache directory.
const (
	tmpPrefix = ".tmp-"
	cutsLog   = "cuts.jsonl"
)

type diskKey struct{ machine, disk string }

// cutEntry is one line of a disk's cut log: a cut in an acknowledged
// segment.
type cutEntry struct {
	Seq  uint64    `json:"seq"`
	ID   string    `json:"id"`
	Kind string    `json:"kind"`
	Gen  uint64    `json:"gen"`
	Time time.Time `json:"time"`
}

// diskState is the process role's state of one disk.
type diskState struct {
	p             *Role
	machine, name string
	dir           string       // DataDir/cache/<machine>/<disk>
	log, alog     *slog.Logger // of the process role, of the applier

	// commit serializes the commit step of uploads (cut log, rename).
	commit sync.Mutex

	mu      sync.Mutex
	next    uint64              // first sequence number not durable
	applied uint64              // first sequence number not applied
	cuts    map[string]cutEntry // by point id, of acknowledged segments
	// applyErr is the error of the last Apply when it failed, "" once
	// a segment is applied again.
	applyErr   string
	applySince time.Time     // when the applies began to fail
	changed    chan struct{} // closed and replaced when applied moves
	wake       chan struct{} // one token: there may be work for the applier
	// maps are the maps of received segments not yet applied, by
	// sequence number (segmap.go); nil once the applier has stopped.
	maps map[uint64]segMap
	// stop ends the applier (the machine moved to another process
	// server: Release).
	stop context.CancelFunc
	// digests are the SHA-256 of the newest acknowledged segments, by
	// sequence number (digest.go), under mu; digestRecords counts the
	// records of the digest log, under commit.
	digests       map[uint64][32]byte
	digestRecords int
	// applyMu is held by the applier while it applies a segment, and by
	// a discard (discard.go); discard is the disk's discard mark, under
	// mu.
	applyMu sync.Mutex
	discard *discardMark
	// sessions are the agent sessions (api.HeaderAgentSession, fence.go)
	// seen on the disk since its state was last asked, and retired those
	// a later session's asking superseded; under mu, changed by a fence
	// under commit too.
	sessions map[string]bool
	retired  []string
	// durable is closed and cleared, under mu, when next moves
	// (pipeline.go); nil until an upload waits for its turn.
	durable chan struct{}
}

func (d *diskState) segPath(seq uint64) string {
	return filepath.Join(d.dir, hrlfmt.SegmentName(seq))
}

// storeApplied returns the first sequence number target storage has not
// applied for the disk.
func (d *diskState) storeApplied(ctx context.Context) (uint64, error) {
	infos, err := d.p.store.Disks(ctx, d.machine)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("target storage: %w", err)
	}
	for _, in := range infos {
		if in.Name == d.name && in.Applied {
			return in.AppliedSeq + 1, nil
		}
	}
	return 0, nil
}

// load derives the disk's state from target storage and the cache: next
// is the end of the contiguous run of cached segments after the last one
// applied.
func (d *diskState) load(ctx context.Context) error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	applied, err := d.storeApplied(ctx)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			// An upload the server died in: never acknowledged.
			os.Remove(filepath.Join(d.dir, name))
			continue
		}
		seq, ok := hrlfmt.ParseSegmentName(name)
		if !ok {
			continue
		}
		if seq < applied {
			// Applied, but the server died before deleting it.
			os.Remove(filepath.Join(d.dir, name))
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	next := applied
	for _, seq := range seqs {
		if seq != next {
			d.log.Error("cache holds a segment after a gap; it will be replaced when the agent sends it again",
				httpapi.LogSeq, seq, "expected", next)
			break
		}
		next++
	}
	d.next, d.applied = next, applied
	if err := d.loadDiscard(); err != nil {
		return err
	}
	if err := d.loadCuts(); err != nil {
		return err
	}
	return d.loadDigests()
}

// loadCuts reads the cut log, keeping the cuts of acknowledged segments.
func (d *diskState) loadCuts() error {
	b, err := os.ReadFile(filepath.Join(d.dir, cutsLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cut log: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c cutEntry
		if json.Unmarshal(sc.Bytes(), &c) != nil {
			continue // a torn last line
		}
		// Lines of segments never acknowledged are ignored.
		if _, dup := d.cuts[c.ID]; c.Seq < d.next && !dup {
			d.cuts[c.ID] = c
		}
	}
	return nil
}

// appendCuts appends the cuts of segment seq to the cut log, durably.
func (d *diskState) appendCuts(seq uint64, cuts []hrlfmt.Cut) error {
	if len(cuts) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, c := range cuts {
		b, _ := json.Marshal(cutEntry{Seq: seq, ID: c.PointID, Kind: c.Kind.String(), Gen: c.Gen, Time: c.Time.UTC()})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(filepath.Join(d.dir, cutsLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// state returns the disk's sequence numbers.
func (d *diskState) state() (next, applied uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next, d.applied
}

// hasCut reports whether a cut of the point is in an acknowledged segment.
func (d *diskState) hasCut(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.cuts[id]
	return ok
}

func (d *diskState) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// waitApplied waits until every segment before seq is applied.
func (d *diskState) waitApplied(ctx context.Context, seq uint64) error {
	for {
		d.mu.Lock()
		applied, ch := d.applied, d.changed
		d.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// applier applies the durable segments of the disk in order until ctx is
// done, retrying failures with exponential backoff.
func (d *diskState) applier(ctx context.Context) {
	log := d.alog
	defer d.dropMaps()
	backoff := time.Duration(0)
	for {
		next, applied := d.state()
		if applied >= next {
			select {
			case <-d.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		d.applyMu.Lock()
		if next, applied = d.state(); applied >= next {
			d.applyMu.Unlock() // a discard emptied the queue meanwhile
			backoff = 0
			continue
		}
		seq := applied
		start := time.Now()
		err := d.applySegment(ctx, seq)
		if err == nil && d.p.applied != nil {
			d.p.applied(d.machine, d.name, time.Since(start))
		}
		if err != nil {
			if ctx.Err() != nil {
				d.applyMu.Unlock()
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), d.p.retryMax)
			if errors.Is(err, store.ErrOutOfOrder) && d.resync(ctx, log) {
				d.applyMu.Unlock()
				backoff = 0
				continue
			}
			log.Error("apply failed; will retry", httpapi.LogSeq, seq, httpapi.LogErr, err, "retry_in", backoff.String())
			d.mu.Lock()
			if d.applyErr == "" {
				d.applySince = time.Now()
			}
			d.applyErr = fmt.Sprintf("segment %d: %v", seq, err)
			d.mu.Unlock()
			d.applyMu.Unlock()
			continue
		}
		backoff = 0
		if err := os.Remove(d.segPath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Harmless: the next start deletes it as applied.
			log.Warn("remove applied segment from cache", httpapi.LogSeq, seq, httpapi.LogErr, err)
		}
		log.Debug("applied", httpapi.LogSeq, seq)
		d.mu.Lock()
		d.applied = seq + 1
		d.applyErr = ""
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
		d.applyMu.Unlock()
	}
}

// resync realigns the applier with target storage after an out-of-order
// error: when storage has applied more than the applier knows (and no more
// than is durable), it skips ahead. It reports whether it moved.
func (d *diskState) resync(ctx context.Context, log *slog.Logger) bool {
	sa, err := d.storeApplied(ctx)
	if err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if sa <= d.applied || sa > d.next {
		log.Error("target storage is out of step with the cache", "storage_next", sa, "cache_applied", d.applied, "cache_next", d.next)
		return false
	}
	for seq := d.applied; seq < sa; seq++ {
		os.Remove(d.segPath(seq))
	}
	log.Warn("target storage had applied more than known; skipping ahead", "from", d.applied, "to", sa)
	d.applied = sa
	close(d.changed)
	d.changed = make(chan struct{})
	return true
}
