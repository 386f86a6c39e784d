package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// Discarding a poisoned segment (api.PathDiscard): a segment this role
// acknowledged but whose apply fails for ever wedges its disk, since
// segments apply in order. The operator discards it: it and every later
// segment of the disk not yet applied are dropped from the cache, the disk
// continues at the discarded number, and a discard mark
// (DIR/cache/<machine>/<disk>/discarded.json, durable before anything is
// removed) makes the agent resync the disk: while the mark is there, an
// upload beyond the next number, or the discarded segment itself sent
// again (same digest), is refused as a conflict (api.CodeSegmentConflict),
// which the agent answers with a resync of the disk from the server's
// next number. The first other segment under that number is the resync's:
// it removes the mark and is accepted.

const discardFile = "discarded.json"

// discardMark is the content of discardFile.
type discardMark struct {
	// Seq is the first segment discarded, Next the disk's next number
	// before the discard.
	Seq  uint64 `json:"seq"`
	Next uint64 `json:"next"`
	// Digests are the SHA-256 (hex) of the discarded segments, by
	// sequence number, where the server knew them.
	Digests map[uint64]string `json:"digests"`
	Time    time.Time         `json:"time"`
}

// loadDiscard reads the discard mark at load: what a discard interrupted
// by a crash left in the cache is removed, and the disk continues at the
// discarded number. It returns the next number. d.next and d.applied are
// set.
func (d *diskState) loadDiscard() error {
	b, err := os.ReadFile(filepath.Join(d.dir, discardFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read discard mark: %w", err)
	}
	var mk discardMark
	if err := json.Unmarshal(b, &mk); err != nil {
		return fmt.Errorf("read discard mark %s: %w", filepath.Join(d.dir, discardFile), err)
	}
	if mk.Seq < d.applied {
		// Target storage applied past it since: nothing to keep.
		return os.Remove(filepath.Join(d.dir, discardFile))
	}
	for seq := mk.Seq; seq < max(mk.Next, d.next); seq++ {
		os.Remove(d.segPath(seq))
	}
	d.next = min(d.next, mk.Seq)
	d.discard = &mk
	return nil
}

// Discard drops segment seq of a disk, the first not applied, whose apply
// keeps failing, with every later segment not applied, and makes the
// agent resync the disk. It refuses a segment that is not failing.
func (p *Role) Discard(ctx context.Context, machine, disk string, seq uint64) (api.DiscardResult, error) {
	if _, err := os.Stat(filepath.Join(p.dir, machine, disk)); errors.Is(err, os.ErrNotExist) {
		return api.DiscardResult{}, httpapi.Errorf(http.StatusNotFound, fmt.Sprintf("this process server holds nothing of disk %s of %s", disk, machine),
			"give the disk as 'lifeboat machines' names it in the apply-failing problem")
	}
	d, err := p.disk(machine, disk)
	if err != nil {
		return api.DiscardResult{}, err
	}
	d.commit.Lock() // no upload commits meanwhile
	defer d.commit.Unlock()
	if err := lockContext(ctx, &d.applyMu); err != nil {
		return api.DiscardResult{}, httpapi.Errorf(http.StatusServiceUnavailable, "the applier of disk "+disk+" is busy", "try again in a moment")
	}
	defer d.applyMu.Unlock()
	d.mu.Lock()
	next, applied, applyErr := d.next, d.applied, d.applyErr
	digests := map[uint64]string{}
	for s := seq; s < next; s++ {
		if h, ok := d.digests[s]; ok {
			digests[s] = hex.EncodeToString(h[:])
		}
	}
	d.mu.Unlock()
	switch {
	case seq >= next:
		return api.DiscardResult{}, httpapi.Errorf(http.StatusNotFound, fmt.Sprintf("disk %s of %s has no segment %d waiting to be applied (next expected: %d)", disk, machine, seq, next),
			"'lifeboat machines' shows the segment whose apply fails, if any")
	case seq < applied:
		return api.DiscardResult{}, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("segment %d of disk %s is applied already", seq, disk),
			"only the first segment not applied can be discarded: 'lifeboat machines' names it")
	case seq != applied:
		return api.DiscardResult{}, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("segment %d of disk %s is not the next to apply (%d is)", seq, disk, applied),
			fmt.Sprintf("discard the segment the applier is stuck on: %d", applied))
	case applyErr == "":
		return api.DiscardResult{}, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("segment %d of disk %s is not failing to apply", seq, disk),
			"discard only a segment whose apply keeps failing ('lifeboat machines' shows it): a discard costs a resync of the disk")
	}
	now := time.Now().UTC()
	mk := discardMark{Seq: seq, Next: next, Digests: digests, Time: now}
	b, _ := json.MarshalIndent(mk, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(d.dir, discardFile), append(b, '\n'), 0o600); err != nil {
		return api.DiscardResult{}, storageError("write discard mark", err)
	}
	for s := seq; s < next; s++ {
		if err := os.Remove(d.segPath(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return api.DiscardResult{}, storageError("remove discarded segment", err)
		}
	}
	if err := d.dropCutsFrom(seq); err != nil {
		return api.DiscardResult{}, storageError("rewrite cut log", err)
	}
	if err := fsutil.SyncDir(d.dir); err != nil {
		return api.DiscardResult{}, storageError("sync cache directory", err)
	}
	d.mu.Lock()
	d.next, d.applyErr, d.applySince, d.discard = seq, "", time.Time{}, &mk
	d.madeDurable() // uploads waiting for their turn see next move back
	for s := range d.digests {
		if s >= seq {
			delete(d.digests, s)
		}
	}
	for id, c := range d.cuts {
		if c.Seq >= seq {
			delete(d.cuts, id)
		}
	}
	for s, sm := range d.maps {
		if s >= seq {
			p.mapRecords.Add(-int64(len(sm.m.Records)))
			delete(d.maps, s)
		}
	}
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	d.log.Warn("segments discarded by the operator; the agent resyncs the disk", httpapi.LogSeq, seq, "count", next-seq)
	return api.DiscardResult{Machine: machine, Disk: disk, Seq: seq, Count: next - seq, NextSeq: seq, Time: now}, nil
}

// lockContext locks mu unless ctx ends first.
func lockContext(ctx context.Context, mu interface{ TryLock() bool }) error {
	for !mu.TryLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// dropCutsFrom rewrites the cut log without the cuts of segments seq and
// later (discarded: a later segment under their numbers has other cuts).
// d.commit must be held.
func (d *diskState) dropCutsFrom(seq uint64) error {
	path := filepath.Join(d.dir, cutsLog)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c cutEntry
		if json.Unmarshal(sc.Bytes(), &c) != nil || c.Seq >= seq {
			continue
		}
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	return fsutil.WriteFileAtomic(path, out.Bytes(), 0o600)
}

// discardConflict refuses an upload of seq while a discard mark is there:
// beyond the next number (the agent's journal went on past the discarded
// segments), or the discarded segment itself again (sum). nil: accept.
// d.mu must not be held.
func (d *diskState) discardConflict(seq uint64, sum *[32]byte) error {
	d.mu.Lock()
	mk, next := d.discard, d.next
	d.mu.Unlock()
	if mk == nil {
		return nil
	}
	switch {
	case seq > next:
	case seq == next && sum != nil && mk.Digests[seq] == hex.EncodeToString(sum[:]):
	default:
		return nil
	}
	return &httpapi.Error{Status: http.StatusConflict, Code: api.CodeSegmentConflict,
		Msg: fmt.Sprintf("segment %d refused: the operator discarded segments %d to %d of this disk at %s (their apply failed); the server continues at %d",
			seq, mk.Seq, mk.Next-1, mk.Time.Format(time.RFC3339), next),
		Remedy: fmt.Sprintf("the agent resyncs the disk and sends it from segment %d on", next)}
}

// clearDiscard removes the discard mark once a segment of the resync is
// accepted under the discarded number, durably before it is. d.commit
// must be held.
func (d *diskState) clearDiscard() error {
	d.mu.Lock()
	mk := d.discard
	d.mu.Unlock()
	if mk == nil {
		return nil
	}
	if err := os.Remove(filepath.Join(d.dir, discardFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := fsutil.SyncDir(d.dir); err != nil {
		return err
	}
	d.mu.Lock()
	d.discard = nil
	d.mu.Unlock()
	d.log.Info("resync after the discard began: the disk accepts segments again", httpapi.LogSeq, mk.Seq)
	return nil
}

// DiscardHandler handles POST api.PathProcessDiscard on a joined server's
// process port: the configuration server passes on the operator's discard
// (api.PathDiscard) of a machine assigned here. On a nil Membership (a
// server that joined none) it answers 404.
func (s *Membership) DiscardHandler(p *Role) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s == nil || p == nil {
			return httpapi.Errorf(http.StatusNotFound, "this process server joined no configuration server", "discard with 'lifeboat machines discard' on the configuration server")
		}
		if !s.fromConfigServer(r) {
			return httpapi.Errorf(http.StatusForbidden, "only the configuration server may discard segments", "discard with 'lifeboat machines discard' on the configuration server")
		}
		m, disk := r.PathValue("m"), r.PathValue("disk")
		for _, n := range []string{m, disk} {
			if err := api.ValidName(n); err != nil {
				return httpapi.Errorf(http.StatusBadRequest, "bad name: "+err.Error(), "see docs/protocol.md")
			}
		}
		var req api.DiscardRequest
		if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
			return err
		}
		if err := s.Check(m); err != nil {
			return err
		}
		res, err := p.Discard(r.Context(), m, disk, req.Seq)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
		return nil
	}
}
