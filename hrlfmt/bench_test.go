package hrlfmt

import (
	"bytes"
	"io"
	"os"
	"testing"
)

const benchRecord = 64 << 10

// benchData returns 16 distinct 64 KiB buffers of the given kind.
func benchData(kind string) [][]byte {
	bufs := make([][]byte, 16)
	for i := range bufs {
		if kind == "random" {
			bufs[i] = randomBytes(uint64(i), benchRecord)
		} else {
			bufs[i] = textBytes(uint64(i), benchRecord)
		}
	}
	return bufs
}

// BenchmarkWriteData measures writing 64 KiB extents, incompressible and
// compressible: "disk" through a Writer into 64 MiB segments in the test's
// temporary directory (rotation and its fsyncs included, no Sync per
// record); "memory" through a SegmentWriter into a file in memory, which
// shows the CPU cost alone. stored/B is the bytes of segment per byte of
// data.
func BenchmarkWriteData(b *testing.B) {
	for _, kind := range []string{"random", "compressible"} {
		b.Run("disk/"+kind+"-64KiB", func(b *testing.B) {
			bufs := benchData(kind)
			var stored int64
			w, err := NewWriter(WriterOptions{
				Dir: b.TempDir(), Machine: "bench", Disk: "sda", DiskSize: 1 << 40,
				OnRotate: func(_ uint64, path string) {
					if fi, err := os.Stat(path); err == nil {
						stored += fi.Size()
					}
					os.Remove(path)
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchRecord)
			n := 0
			for b.Loop() {
				if err := w.WriteData(int64(n%4096)*benchRecord, uint64(n), bufs[n%len(bufs)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(stored)/float64(n*benchRecord), "stored/B")
		})
		b.Run("memory/"+kind+"-64KiB", func(b *testing.B) {
			bufs := benchData(kind)
			h := Header{Version: Version, Machine: "bench", Disk: "sda", DiskSize: 1 << 40, Created: goldenTime}
			file := new(memFile)
			var stored int64
			var w *SegmentWriter
			b.SetBytes(benchRecord)
			n := 0
			for b.Loop() {
				if w == nil || w.Size() >= DefaultMaxSegmentBytes {
					if w != nil {
						stored += w.Size()
					}
					file.b = file.b[:0]
					var err error
					if w, err = startSegment(file, "mem", "", h); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.WriteData(int64(n%4096)*benchRecord, uint64(n), bufs[n%len(bufs)]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			stored += w.Size()
			b.ReportMetric(float64(stored)/float64(n*benchRecord), "stored/B")
		})
	}
}

// BenchmarkReader measures reading (checksums, decompression, checks) a
// 16 MiB segment of 64 KiB DATA records from memory.
func BenchmarkReader(b *testing.B) {
	for _, kind := range []string{"random", "compressible"} {
		b.Run(kind+"-64KiB", func(b *testing.B) {
			bufs := benchData(kind)
			file := new(memFile)
			h := Header{Version: Version, Machine: "bench", Disk: "sda", DiskSize: 1 << 40, Created: goldenTime}
			w, err := startSegment(file, "mem", "", h)
			if err != nil {
				b.Fatal(err)
			}
			const records = 256
			for i := range records {
				if err := w.WriteData(int64(i)*benchRecord, 1, bufs[i%len(bufs)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(records * benchRecord)
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(file.b))
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
