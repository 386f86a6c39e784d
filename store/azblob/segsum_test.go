package azblob

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/store"
)

// SegmentSum gives the SHA-256 of the bytes applied under a sequence
// number, as store.Local's does, from the container alone: to a store
// opened afresh by another owner (the process server a machine moved to,
// or one restarted), for segments another one applied. A segment not
// applied (also one an interrupted Apply left in the journal) or merged
// into the base by Prune is store.ErrNotFound (issue 18).
func TestSegmentSum(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	loc := az.container(t, "segsum")
	a := az.open(t, loc, "ps1")
	if _, err := a.SegmentSum(ctx, testMachine, "sda", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sum of a disk with nothing applied: %v, want ErrNotFound", err)
	}
	segs := plan(rand.New(rand.NewPCG(11, 12)), 6, nil)
	dir := t.TempDir()
	var sums [][sha256.Size]byte
	var paths []string
	for i, sg := range segs {
		p := writeSeg(t, dir, "sda", uint64(i), sg)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		paths, sums = append(paths, p), append(sums, sha256.Sum256(b))
		if i < 5 {
			if err := a.Apply(ctx, testMachine, "sda", uint64(i), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.Close()

	// Another owner, a new Store: what it knows comes from the container.
	b := az.open(t, loc, "ps2")
	for seq := range 5 {
		got, err := b.SegmentSum(ctx, testMachine, "sda", uint64(seq))
		if err != nil || got != sums[seq] {
			t.Fatalf("sum of segment %d from another server: %x, %v; want %x", seq, got, err, sums[seq])
		}
	}
	if got, err := b.SegmentSum(ctx, testMachine, "sda", 0); err == nil && got == sums[1] {
		t.Fatal("segment 0's sum is segment 1's")
	}
	// Segment 5 in the journal, its apply interrupted before the marker:
	// not applied, so no digest to compare with.
	seg5, err := os.ReadFile(paths[5])
	if err != nil {
		t.Fatal(err)
	}
	if err := b.putSegment(ctx, testMachine, "sda", 5, seg5); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SegmentSum(ctx, testMachine, "sda", 5); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sum of segment 5, in the journal but not applied: %v, want ErrNotFound", err)
	}
	if _, err := b.SegmentSum(ctx, testMachine, "sda", 6); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sum of segment 6, never sent: %v, want ErrNotFound", err)
	}
	// A journal blob without the metadata is hashed whole; one whose
	// metadata is not a digest is an error, never a match.
	bb := b.cc.NewBlockBlobClient(segmentBlob(testMachine, "sda", 2))
	if _, err := bb.SetMetadata(ctx, map[string]*string{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.SegmentSum(ctx, testMachine, "sda", 2); err != nil || got != sums[2] {
		t.Fatalf("sum of segment 2 without metadata: %x, %v; want %x", got, err, sums[2])
	}
	if _, err := bb.SetMetadata(ctx, map[string]*string{metaSum: to("not a digest")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SegmentSum(ctx, testMachine, "sda", 2); err == nil {
		t.Fatal("a journal blob with a bad digest in its metadata gave a sum")
	}

	// Merged into the base by Prune: no longer comparable.
	pol := store.Retention{Window: 10 * time.Second, KeepAll: 2 * time.Second, Thin: time.Hour}
	r, err := b.Prune(ctx, testMachine, pol, t0.Add(5*time.Second))
	if err != nil || r.Merged == 0 {
		t.Fatalf("prune: %+v, %v; want segments merged", r, err)
	}
	if _, err := b.SegmentSum(ctx, testMachine, "sda", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sum of segment 0, merged into the base: %v, want ErrNotFound", err)
	}
	if got, err := b.SegmentSum(ctx, testMachine, "sda", 4); err != nil || got != sums[4] {
		t.Fatalf("sum of segment 4 after the prune: %x, %v; want %x", got, err, sums[4])
	}
	if _, err := b.SegmentSum(ctx, testMachine, "../x", 0); err == nil {
		t.Fatal("a bad disk name was accepted")
	}
}
