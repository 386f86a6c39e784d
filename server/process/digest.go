package process

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// A duplicate upload is acknowledged only when it is the segment already
// accepted, byte for byte: the SHA-256 of every accepted segment is kept
// in the disk's digest log (DIR/cache/<machine>/<disk>/digests), durable
// before the segment is acknowledged. A different segment under an
// accepted sequence number (sent by anyone else holding the machine's key,
// or by an agent whose state went back in time) is refused with
// api.CodeSegmentConflict, and the agent resyncs that disk.
//
// The log is a sequence of 40-byte records: the sequence number (8 bytes,
// big-endian) and the digest. A later record of a sequence number replaces
// an earlier one (a segment whose rename failed and was sent again). A
// torn last record is ignored. Only the newest keepDigests are kept: an
// agent uploads in order and deletes a segment once acknowledged, so a
// duplicate is one whose acknowledgement was lost, the last few at most;
// an older one is refused as a conflict too (it cannot be compared), which
// costs a resync, never a wrong acknowledgement.

const (
	digestLog    = "digests"
	digestRecord = 8 + sha256.Size
	keepDigests  = 1024
)

// loadDigests reads the digest log: the digests of acknowledged segments
// (those before d.next).
func (d *diskState) loadDigests() error {
	b, err := os.ReadFile(filepath.Join(d.dir, digestLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read digest log: %w", err)
	}
	for len(b) >= digestRecord {
		seq := binary.BigEndian.Uint64(b)
		if seq < d.next {
			var sum [sha256.Size]byte
			copy(sum[:], b[8:digestRecord])
			d.digests[seq] = sum
		}
		b = b[digestRecord:]
	}
	d.digestRecords = len(d.digests)
	return nil
}

// appendDigest makes the digest of segment seq durable in the digest log
// before seq is acknowledged, and compacts the log when it has grown to
// twice keepDigests. d.commit must be held.
func (d *diskState) appendDigest(seq uint64, sum [sha256.Size]byte) error {
	var rec [digestRecord]byte
	binary.BigEndian.PutUint64(rec[:], seq)
	copy(rec[8:], sum[:])
	if d.digestRecords >= 2*keepDigests {
		return d.compactDigests(seq, sum)
	}
	f, err := os.OpenFile(filepath.Join(d.dir, digestLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(rec[:])
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		d.digestRecords++
	}
	return err
}

// compactDigests rewrites the digest log with the newest keepDigests - 1
// digests and seq's, crash-safely.
func (d *diskState) compactDigests(seq uint64, sum [sha256.Size]byte) error {
	d.mu.Lock()
	seqs := make([]uint64, 0, len(d.digests))
	for s := range d.digests {
		if s != seq {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if len(seqs) > keepDigests-1 {
		seqs = seqs[len(seqs)-(keepDigests-1):]
	}
	var buf bytes.Buffer
	var rec [digestRecord]byte
	for _, s := range append(seqs, seq) {
		h := sum
		if s != seq {
			h = d.digests[s]
		}
		binary.BigEndian.PutUint64(rec[:], s)
		copy(rec[8:], h[:])
		buf.Write(rec[:])
	}
	d.mu.Unlock()
	if err := fsutil.WriteFileAtomic(filepath.Join(d.dir, digestLog), buf.Bytes(), 0o600); err != nil {
		return err
	}
	d.digestRecords = len(seqs) + 1
	return nil
}

// keepDigest records the digest of acknowledged segment seq in memory and
// forgets the oldest beyond keepDigests. d.mu must be held.
func (d *diskState) keepDigest(seq uint64, sum [sha256.Size]byte) {
	d.digests[seq] = sum
	if seq < keepDigests || len(d.digests) <= keepDigests {
		return
	}
	old := seq - keepDigests
	delete(d.digests, old) // segments come in order: usually the only one
	if len(d.digests) > keepDigests+16 {
		for s := range d.digests {
			if s <= old {
				delete(d.digests, s)
			}
		}
	}
}

// SegmentSummer is target storage that keeps applied segments byte for
// byte and gives their SHA-256 (store.Local, azblob.Store). Segments acknowledged by
// another process server (before a scale-out move) are in no local digest
// log: their digest is taken from target storage, which the servers share.
type SegmentSummer interface {
	SegmentSum(ctx context.Context, machine, disk string, seq uint64) ([sha256.Size]byte, error)
}

// storedDigest is the digest of applied segment seq from target storage,
// when it can tell.
func (d *diskState) storedDigest(ctx context.Context, seq uint64) ([sha256.Size]byte, bool) {
	ss, ok := d.p.store.(SegmentSummer)
	if !ok {
		return [sha256.Size]byte{}, false
	}
	if _, applied := d.state(); seq >= applied {
		return [sha256.Size]byte{}, false
	}
	sum, err := ss.SegmentSum(ctx, d.machine, d.name, seq)
	if err != nil {
		d.log.Warn("no digest of an applied segment in target storage", httpapi.LogSeq, seq, httpapi.LogErr, err)
		return sum, false
	}
	return sum, true
}

// checkDuplicate answers an upload of seq, an accepted sequence number,
// whose body has the digest sum: an acknowledgement when it is the
// accepted segment, a conflict otherwise. A digest this server does not
// keep (the segment was acknowledged by the process server the machine
// moved from) is taken from target storage.
func (d *diskState) checkDuplicate(ctx context.Context, seq uint64, sum [sha256.Size]byte) (*api.SegmentAck, error) {
	d.mu.Lock()
	have, known := d.digests[seq]
	d.mu.Unlock()
	if !known {
		have, known = d.storedDigest(ctx, seq)
	}
	if known && have == sum {
		return &api.SegmentAck{Acked: seq, Duplicate: true}, nil
	}
	why := "its content differs from the segment accepted under that number"
	if !known {
		why = "the server no longer keeps that segment's digest to compare it with"
	}
	d.log.Error("segment refused: a different segment was accepted under its sequence number", httpapi.LogSeq, seq, "known", known)
	if d.p.events != nil {
		d.p.events.SegmentConflict(d.machine, d.name, seq)
	}
	return nil, &httpapi.Error{Status: http.StatusConflict, Code: api.CodeSegmentConflict,
		Msg: fmt.Sprintf("segment %d conflicts with the segment %d already accepted: %s", seq, seq, why),
		Remedy: "the replica may hold data this agent did not send (another holder of the machine's key, or agent state restored from an old copy): " +
			"the agent resyncs the disk; revoke the machine's certificate ('lifeboat machines revoke') if the key may be stolen"}
}

// duplicateBody reads the body of a duplicate upload (bounded by max) and
// returns its digest.
func duplicateBody(w http.ResponseWriter, r *http.Request, max int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	body := &errReader{r: http.MaxBytesReader(w, r.Body, max)}
	io.Copy(h, body)
	if err := receiveError(body, &errWriter{w: io.Discard}, max); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
