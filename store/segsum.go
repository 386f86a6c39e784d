package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// SegmentSum returns the SHA-256 of applied segment seq of a disk, as the
// journal keeps it: the very bytes the process server received (Apply
// links or copies them unchanged). A process server that took a machine
// over in a scale-out move compares a segment the agent sends again with
// it, the digest log of the server that acknowledged it being on another
// host. A segment not applied, or merged into the base by Prune since, is
// an error wrapping ErrNotFound.
func (l *Local) SegmentSum(ctx context.Context, machine, disk string, seq uint64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if err := CheckName(machine); err != nil {
		return sum, fmt.Errorf("segment sum: machine: %w", err)
	}
	if err := CheckName(disk); err != nil {
		return sum, fmt.Errorf("segment sum: disk: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	dir := l.diskDir(machine, disk)
	st, ok, err := readApplied(dir)
	if err != nil {
		return sum, err
	}
	if !ok || seq > st.Seq {
		return sum, fmt.Errorf("segment %d of %s/%s not applied: %w", seq, machine, disk, ErrNotFound)
	}
	b, err := fileSum(filepath.Join(dir, journalDir, hrlfmt.SegmentName(seq)))
	if errors.Is(err, fs.ErrNotExist) {
		return sum, fmt.Errorf("segment %d of %s/%s no longer in the journal: %w", seq, machine, disk, ErrNotFound)
	}
	if err != nil {
		return sum, fmt.Errorf("segment sum: %w", err)
	}
	copy(sum[:], b)
	return sum, nil
}
