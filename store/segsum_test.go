package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"testing"
)

// SegmentSum gives the SHA-256 of the bytes applied under a sequence
// number, and ErrNotFound for one not applied.
func TestSegmentSum(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 1)
	l := openTest(t, t.TempDir())
	if _, err := l.SegmentSum(ctx, testMachine, "sda", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sum of a disk with nothing applied: %v, want ErrNotFound", err)
	}
	for seq := range 2 {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range 2 {
		b, err := os.ReadFile(p.paths[seq])
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.SegmentSum(ctx, testMachine, "sda", uint64(seq))
		if err != nil || got != sha256.Sum256(b) {
			t.Fatalf("sum of segment %d: %x, %v; want %x", seq, got, err, sha256.Sum256(b))
		}
	}
	if _, err := l.SegmentSum(ctx, testMachine, "sda", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sum of segment 2, not applied: %v, want ErrNotFound", err)
	}
	if _, err := l.SegmentSum(ctx, testMachine, "../x", 0); err == nil {
		t.Fatal("a bad disk name was accepted")
	}
}
