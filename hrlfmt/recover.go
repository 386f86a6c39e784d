package hrlfmt

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// Recovery reports what Recover found and did.
type Recovery struct {
	// Found reports whether the directory held any segment. When it is
	// false, NextSeq is 0 and the caller picks the first sequence number.
	Found bool
	// NextSeq is the sequence number of the next segment to write: one
	// past the last segment, or the last segment's own number when that
	// segment was removed (Removed).
	NextSeq uint64
	// Repaired is the path of the last segment if it had to be repaired
	// (sealed, or removed), else "".
	Repaired string
	// TornCopy is the path of the copy of the repaired segment's original
	// bytes, kept when the repair dropped bytes, else "".
	TornCopy string
	// Truncated is the number of bytes the repair dropped from the tail.
	Truncated int64
	// Removed reports that the last segment had no valid header (the crash
	// came while it was created, before any record) and was removed.
	Removed bool
}

// Recover makes the segment directory dir consistent after a crash of its
// Writer, and returns the sequence number to start the next Writer at.
//
// Only the last segment (highest sequence number) can be left incomplete
// by a crash, because a Writer closes a segment durably before it creates
// the next one; Recover checks that one in full and leaves the others to
// the reader. If it is complete, nothing changes. If it is torn (ErrTorn),
// Recover keeps a copy of its bytes as "<name>.torn" (or "<name>.torn.N"
// when that exists) if any are to be dropped, truncates it after its last
// good record and appends a trailer, so that it reads as a complete segment
// of those records; if not even its header is good, it removes it instead
// and its sequence number is reused. A last segment that is corrupt (bad
// data with more after it), of an unknown version, or whose header names
// another sequence number is not touched: Recover returns an error that
// wraps ErrCorrupt or ErrVersion, and the caller must set the directory
// aside and resynchronise.
//
// Recover must not run while a Writer writes to dir.
func Recover(dir string) (Recovery, error) {
	seqs, err := listSegments(dir)
	if err != nil {
		return Recovery{}, fmt.Errorf("recover: %w", err)
	}
	if len(seqs) == 0 {
		return Recovery{}, nil
	}
	last := seqs[len(seqs)-1]
	path := filepath.Join(dir, SegmentName(last))
	s, st, verr := verify(path)
	if verr == nil || s.ValidBytes > 0 {
		if s.Header.Seq != last {
			return Recovery{}, fmt.Errorf("recover: %w", &FormatError{File: path, Err: fmt.Errorf("%w: header says sequence number %d", ErrCorrupt, s.Header.Seq)})
		}
	}
	if verr == nil {
		if last == math.MaxUint64 {
			return Recovery{}, fmt.Errorf("recover: %s: sequence numbers exhausted", path)
		}
		return Recovery{Found: true, NextSeq: last + 1}, nil
	}
	var fe *FormatError
	if !errors.Is(verr, ErrTorn) || !errors.As(verr, &fe) {
		return Recovery{}, fmt.Errorf("recover: %w", verr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Recovery{}, fmt.Errorf("recover: %w", err)
	}
	valid := fe.Offset
	rec := Recovery{Found: true, NextSeq: last + 1, Repaired: path, Truncated: fi.Size() - valid}
	if rec.Truncated > 0 {
		if rec.TornCopy, err = keepCopy(path); err != nil {
			return Recovery{}, fmt.Errorf("recover: %w", err)
		}
	}
	if valid == 0 {
		if err := os.Remove(path); err != nil {
			return Recovery{}, fmt.Errorf("recover: %w", err)
		}
		if err := fsutil.SyncDir(dir); err != nil {
			return Recovery{}, fmt.Errorf("recover: %w", err)
		}
		rec.NextSeq, rec.Removed = last, true
		return rec, nil
	}
	if last == math.MaxUint64 {
		return Recovery{}, fmt.Errorf("recover: %s: sequence numbers exhausted", path)
	}
	if err := seal(path, valid, st); err != nil {
		return Recovery{}, fmt.Errorf("recover: %w", err)
	}
	if s, err := VerifySegment(path); err != nil || !s.Complete {
		return Recovery{}, fmt.Errorf("recover: sealed segment does not verify: %w", err)
	}
	return rec, nil
}

// seal truncates the segment at path to its valid prefix of valid bytes and
// appends the trailer of the records in it, described by st.
func seal(path string, valid int64, st trailer) error {
	if st.offset != uint64(valid) {
		return fmt.Errorf("seal %s: records end at %d, valid prefix at %d", path, st.offset, valid)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	rec := make([]byte, trailerRecordSize)
	st.marshal(rec[RecordHeaderSize:])
	sealRecord(rec, RecTrailer, 0)
	err = f.Truncate(valid)
	if err == nil {
		err = writeFull(f, rec, valid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("seal %s: %w", path, err)
	}
	return nil
}

// keepCopy copies the file at path, durably, to the first free name among
// path.torn, path.torn.1, path.torn.2… and returns that name.
func keepCopy(path string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("keep torn copy: %w", err)
	}
	defer src.Close()
	tmp := path + ".torn.tmp"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("keep torn copy: %w", err)
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("keep torn copy: %w", err)
	}
	name := path + ".torn"
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("keep torn copy: %w", err)
		}
		name = fmt.Sprintf("%s.torn.%d", path, i)
	}
	if err := os.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("keep torn copy: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("keep torn copy: %w", err)
	}
	return name, nil
}
