package hrlfmt

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteBatchSameBytes: records encoded in a Batch and appended with
// WriteBatch give byte for byte the segments WriteData and WriteZero give,
// rotation by size included.
func TestWriteBatchSameBytes(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0)}
	open := func(dir string) *Writer {
		w, err := NewWriter(WriterOptions{Dir: dir, Machine: "m", Disk: "d", DiskSize: 64 << 20,
			MaxSegmentBytes: 300 << 10, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	type op struct {
		zero bool
		off  int64
		data []byte
	}
	var ops []op
	for i := range 40 {
		switch i % 3 {
		case 0:
			ops = append(ops, op{off: int64(i) << 20, data: randomBytes(uint64(i), 64<<10)})
		case 1:
			ops = append(ops, op{off: int64(i) << 20, data: textBytes(uint64(i), 40<<10)})
		default:
			ops = append(ops, op{zero: true, off: int64(i) << 20})
		}
	}
	plain, batched := t.TempDir(), t.TempDir()
	w := open(plain)
	for _, o := range ops {
		var err error
		if o.zero {
			err = w.WriteZero(o.off, 4096, 7, ZeroZeroed)
		} else {
			err = w.WriteData(o.off, 7, o.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = open(batched)
	b := NewBatch(64 << 20)
	for i, o := range ops {
		var err error
		if o.zero {
			err = b.Zero(o.off, 4096, 7, ZeroZeroed)
		} else {
			err = b.Data(o.off, 7, o.data)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if err := w.WriteBatch(b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	if err := w.WriteBatch(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(plain, "*.hrl"))
	got, _ := filepath.Glob(filepath.Join(batched, "*.hrl"))
	if len(want) < 3 || len(got) != len(want) {
		t.Fatalf("%d segments written by batches, %d directly (want several)", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(mustRead(t, got[i]), mustRead(t, want[i])) {
			t.Errorf("segment %s differs", filepath.Base(got[i]))
		}
	}
}

func TestWriteBatchRejects(t *testing.T) {
	w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Machine: "m", Disk: "d", DiskSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteBatch(NewBatch(2 << 20)); err == nil || !strings.Contains(err.Error(), "disk of") {
		t.Errorf("batch for another disk size: %v", err)
	}
	b := NewBatch(1 << 20)
	if err := b.Data(1<<20-10, 1, make([]byte, 20)); err == nil {
		t.Error("extent beyond the disk accepted")
	}
	if err := b.Zero(0, 10, 1, ZeroReason(9)); err == nil {
		t.Error("unknown zero reason accepted")
	}
	if b.Len() != 0 {
		t.Errorf("%d records after rejected ones", b.Len())
	}
}
