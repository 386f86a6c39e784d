package servertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// ReplicateImage sends the content of the disk image at img (its data
// extents; holes are left as the replica's zeros) as segments of disk,
// from sequence number seq on, each with at most 32 MiB of data, and the
// cuts in the last one. It returns the next sequence number. The image's
// size is the disk's size.
func ReplicateImage(t testing.TB, a *Agent, disk, img string, seq, gen uint64, cuts ...hrlfmt.Cut) uint64 {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	const chunk, perSegment = 4 << 20, 32 << 20
	var writes []Write
	var pending int64
	flush := func(last bool) {
		sg := Segment{Machine: a.Name, Disk: disk, DiskSize: size, Seq: seq, Gen: gen, Writes: writes}
		if last {
			sg.Cuts = cuts
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := a.Process.PutSegmentFile(ctx, disk, seq, sg.Build(t, t.TempDir())); err != nil {
			t.Fatalf("put segment %d of %s: %v", seq, disk, err)
		}
		seq++
		writes, pending = nil, 0
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; p < hole; {
			n := min(hole-p, chunk)
			if _, err := f.ReadAt(buf[:n], p); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if !fsutil.IsZero(buf[:n]) {
				writes = append(writes, Write{Off: p, Data: bytes.Clone(buf[:n])})
				pending += n
			}
			if pending >= perSegment {
				flush(false)
			}
			p += n
		}
		off = hole
	}
	flush(true)
	return seq
}
