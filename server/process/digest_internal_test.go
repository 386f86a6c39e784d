package process

import (
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// The digest log keeps the newest keepDigests digests across compactions
// and restarts, and forgets older ones.
func TestDigestLogCompacts(t *testing.T) {
	dir := t.TempDir()
	d := &diskState{p: &Role{}, dir: dir, digests: map[uint64][32]byte{}, log: slog.Default()}
	sum := func(seq uint64) [32]byte {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], seq)
		return sha256.Sum256(b[:])
	}
	const n = 3*keepDigests + 7
	for seq := uint64(0); seq < n; seq++ {
		if err := d.appendDigest(seq, sum(seq)); err != nil {
			t.Fatal(err)
		}
		d.keepDigest(seq, sum(seq))
	}
	if len(d.digests) != keepDigests {
		t.Errorf("%d digests in memory, want %d", len(d.digests), keepDigests)
	}
	fi, err := os.Stat(filepath.Join(dir, digestLog))
	if err != nil || fi.Size() > 2*keepDigests*digestRecord {
		t.Fatalf("digest log %v bytes, %v: not compacted", fi.Size(), err)
	}
	re := &diskState{dir: dir, next: n, digests: map[uint64][32]byte{}}
	if err := re.loadDigests(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(n - keepDigests); seq < n; seq++ {
		if re.digests[seq] != sum(seq) {
			t.Fatalf("digest of %d lost across a restart", seq)
		}
	}
	if _, ok := re.digests[0]; ok {
		t.Error("the oldest digest kept for ever")
	}
}
