//go:build linux

package recovery_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/recovery/recoverytest"
)

// TestDetectFS: DetectFS names what the real mkfs tools make, at offset 0
// and inside a partition.
func TestDetectFS(t *testing.T) {
	for _, c := range []struct {
		typ  string
		size int64
		want string
	}{
		{"ext2", 16 * recoverytest.MiB, recovery.FSExt2},
		{"ext3", 16 * recoverytest.MiB, recovery.FSExt3},
		{"ext4", 16 * recoverytest.MiB, recovery.FSExt4},
		{"xfs", recoverytest.XFSMinSize, recovery.FSXFS},
		{"swap", 16 * recoverytest.MiB, recovery.FSSwap},
	} {
		t.Run(c.typ, func(t *testing.T) {
			fs := recoverytest.MakeFS(t, c.typ, c.size)
			f, err := os.Open(fs)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := recovery.DetectFS(f, 0, c.size)
			if err != nil || got != c.want {
				t.Errorf("DetectFS = %q, %v; want %q", got, err, c.want)
			}
			img, offs := recoverytest.PartitionedImage(t, recoverytest.Part{SizeMiB: 1, Type: "U"}, recoverytest.Part{SizeMiB: c.size / recoverytest.MiB, Type: "L", FS: fs})
			g, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if got, err := recovery.DetectFS(g, offs[1], c.size); err != nil || got != c.want {
				t.Errorf("in partition 2: DetectFS = %q, %v; want %q", got, err, c.want)
			}
			if got, err := recovery.DetectFS(g, 0, 1<<20); err != nil || got != "" {
				t.Errorf("at the GPT: DetectFS = %q, %v; want nothing", got, err)
			}
		})
	}
}

func TestDetectFSShort(t *testing.T) {
	for _, n := range []int{0, 100, 2000, 4096} {
		got, err := recovery.DetectFS(bytes.NewReader(make([]byte, n)), 0, int64(n))
		if err != nil || got != "" {
			t.Errorf("%d zero bytes: %q, %v", n, got, err)
		}
	}
}
