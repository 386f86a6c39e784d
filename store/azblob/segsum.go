package azblob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/lifeboat-dr/lifeboat/store"
)

// SegmentSum returns the SHA-256 of applied segment seq of a disk: the
// digest Apply stored in the journal blob's metadata (lifeboatsha256),
// written in the same Put Blob as the segment's bytes (the very bytes the
// process server received) and before the applied marker moved past it.
// A process server that took a machine over in a scale-out move, or one
// restarted without its cache, compares a segment the agent sends again
// with it (server/process.SegmentSummer), as it does with store.Local's.
// A journal blob without the metadata is hashed whole. A segment not
// applied (a journal blob an interrupted Apply left counts as not
// applied), or merged into the base by Prune since, is an error wrapping
// store.ErrNotFound.
func (s *Store) SegmentSum(ctx context.Context, machine, disk string, seq uint64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if err := store.CheckName(machine); err != nil {
		return sum, fmt.Errorf("segment sum: machine: %w", err)
	}
	if err := store.CheckName(disk); err != nil {
		return sum, fmt.Errorf("segment sum: disk: %w", err)
	}
	_, st, err := s.replica(ctx, machine, disk)
	if err != nil {
		return sum, fmt.Errorf("segment sum: %w", err)
	}
	if !st.applied || seq > st.seq {
		return sum, fmt.Errorf("segment %d of %s/%s not applied: %w", seq, machine, disk, store.ErrNotFound)
	}
	name := segmentBlob(machine, disk, seq)
	props, err := s.cc.NewBlockBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return sum, fmt.Errorf("segment %d of %s/%s no longer in the journal: %w", seq, machine, disk, store.ErrNotFound)
	}
	if err != nil {
		return sum, fmt.Errorf("segment sum: journal segment %d: %w", seq, err)
	}
	if v := lower(props.Metadata)[metaSum]; v != nil {
		b, err := hex.DecodeString(*v)
		if err != nil || len(b) != sha256.Size {
			return sum, fmt.Errorf("segment sum: journal segment %d: metadata %s=%q is not a SHA-256", seq, metaSum, *v)
		}
		copy(sum[:], b)
		return sum, nil
	}
	b, err := s.download(ctx, name)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return sum, fmt.Errorf("segment %d of %s/%s no longer in the journal: %w", seq, machine, disk, store.ErrNotFound)
	}
	if err != nil {
		return sum, fmt.Errorf("segment sum: journal segment %d: %w", seq, err)
	}
	return sha256.Sum256(b), nil
}
