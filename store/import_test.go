//go:build linux

package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// TestApplyLinksSegment: on one file system the journal entry is a hard
// link of the segment the caller gave (no copy); from another it is a
// copy. Either way the replica is the model's.
func TestApplyLinksSegment(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 4)
	dir := t.TempDir()
	l := openTest(t, dir)
	other := otherFilesystemDir(t, dir)
	copied := -1
	for seq, src := range p.paths {
		if other != "" && seq == 1 {
			// This one comes from another file system: it is copied.
			moved := filepath.Join(other, filepath.Base(src))
			if err := os.WriteFile(moved, mustReadFile(t, src), 0o600); err != nil {
				t.Fatal(err)
			}
			src, copied = moved, seq
		}
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), src); err != nil {
			t.Fatal(err)
		}
		jpath := filepath.Join(l.diskDir(testMachine, "sda"), journalDir, hrlfmt.SegmentName(uint64(seq)))
		ji, err := os.Stat(jpath)
		if err != nil {
			t.Fatal(err)
		}
		si, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		if linked := os.SameFile(ji, si); linked == (seq == copied) {
			t.Errorf("segment %d: journal entry linked=%v, want linked only on the same file system", seq, linked)
		}
		if !bytes.Equal(mustReadFile(t, jpath), mustReadFile(t, src)) {
			t.Errorf("segment %d: journal entry differs from the segment", seq)
		}
	}
	got := mustReadFile(t, filepath.Join(l.diskDir(testMachine, "sda"), currentImg))
	if !bytes.Equal(got, p.final) {
		t.Fatalf("replica differs from the model at byte %d", firstDiff(got, p.final))
	}
	if other == "" {
		t.Log("no second file system (/dev/shm) to test the copy across file systems")
	}
}

// TestApplyInterruptedOtherSegment: a journal entry an interrupted Apply
// left for the same sequence number with other bytes is refused, and one
// with the same bytes (a copy, not a link) is accepted.
func TestApplyInterruptedOtherSegment(t *testing.T) {
	ctx := context.Background()
	p := smallPlan(t, 5)
	l := openTest(t, t.TempDir())
	if err := l.Apply(ctx, testMachine, "sda", 0, p.paths[0]); err != nil {
		t.Fatal(err)
	}
	jdir := filepath.Join(l.diskDir(testMachine, "sda"), journalDir)
	left := filepath.Join(jdir, hrlfmt.SegmentName(1))
	if err := os.WriteFile(left, mustReadFile(t, p.paths[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(ctx, testMachine, "sda", 1, p.paths[1]); err == nil {
		t.Fatal("applied over the journal entry of another segment")
	}
	if err := os.WriteFile(left, mustReadFile(t, p.paths[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq < len(p.paths); seq++ {
		if err := l.Apply(ctx, testMachine, "sda", uint64(seq), p.paths[seq]); err != nil {
			t.Fatal(err)
		}
	}
	got := mustReadFile(t, filepath.Join(l.diskDir(testMachine, "sda"), currentImg))
	if !bytes.Equal(got, p.final) {
		t.Fatalf("replica differs from the model at byte %d", firstDiff(got, p.final))
	}
}

// otherFilesystemDir returns a temporary directory on another file system
// than dir (/dev/shm), or "" if there is none.
func otherFilesystemDir(t *testing.T, dir string) string {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat("/dev/shm", &b) != nil || a.Dev == b.Dev {
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "lifeboat-store-test-")
	if err != nil {
		return ""
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
