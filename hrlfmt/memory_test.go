package hrlfmt

import (
	"bytes"
	"io"
	"math/rand"
	"path/filepath"
	"testing"
	"time"
)

// A Writer of memory segments creates no file and hands over complete,
// verifiable segments, in sequence order, reusing the buffers it is given.
func TestMemoryWriter(t *testing.T) {
	dir := t.TempDir()
	var seqs []uint64
	var segs [][]byte
	reused := 0
	w, err := NewWriter(WriterOptions{Memory: true, Machine: "m", Disk: "d", DiskSize: 1 << 20, MaxSegmentBytes: 8 << 10, FirstSeq: 7,
		OnSealed: func(seq uint64, b []byte) { seqs = append(seqs, seq); segs = append(segs, append([]byte(nil), b...)) },
		Buffer:   func() []byte { reused++; return make([]byte, 0, 16<<10) },
	})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4096) // incompressible
	rand.New(rand.NewSource(1)).Read(data)
	for i := range 5 {
		if err := w.WriteData(int64(i)*4096, uint64(i+1), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteCut(Cut{Kind: CutCrash, Gen: 5, Time: time.Unix(1, 0), PointID: "p"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seqs) < 2 || seqs[0] != 7 {
		t.Fatalf("sealed %v, want several from 7", seqs)
	}
	if reused != len(seqs) {
		t.Errorf("Buffer called %d times for %d segments", reused, len(seqs))
	}
	var datas, cutsSeen int
	for i, b := range segs {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if r.Header().Seq != seqs[i] {
			t.Errorf("segment %d has seq %d", seqs[i], r.Header().Seq)
		}
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("segment %d: %v", seqs[i], err)
			}
			switch rec.Type {
			case RecData:
				if !bytes.Equal(rec.Data, data) {
					t.Errorf("data of segment %d differs", seqs[i])
				}
				datas++
			case RecCut:
				cutsSeen++
			}
		}
		if !r.Complete() {
			t.Errorf("segment %d has no trailer", seqs[i])
		}
	}
	if datas != 5 || cutsSeen != 1 {
		t.Errorf("read %d DATA and %d CUT records, want 5 and 1", datas, cutsSeen)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*")); len(ents) != 0 {
		t.Errorf("files written: %v", ents)
	}
}
