//go:build linux

package recovery_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/recovery/recoverytest"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

func checkImage(t *testing.T, img string) []recovery.FSCheck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &recovery.Checker{Log: servertest.Logger(t)}
	cs, err := c.CheckImage(ctx, img)
	if err != nil {
		t.Fatalf("check image: %v", err)
	}
	return cs
}

// noLoopOn fails the test if a loop device is still attached to img.
func noLoopOn(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command("losetup", "--associated", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup --associated: %v: %s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("loop device left attached: %s", s)
	}
}

// TestCheckWholeDisk: a whole-disk ext4 is checked on the image file
// itself (no root, no loop device) and found clean; corrupted, it is found
// with errors, and the image is left as it was (read-only check).
func TestCheckWholeDisk(t *testing.T) {
	testenv.RequireCommand(t, "e2fsck")
	img := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "ext4", 32*recoverytest.MiB))
	cs := checkImage(t, img)
	if len(cs) != 1 || cs[0].Partition != 0 || cs[0].Offset != 0 || cs[0].Type != recovery.FSExt4 || cs[0].Tool != "e2fsck -fn" ||
		cs[0].ExitStatus != 0 || cs[0].Result != recovery.ResultClean || !cs[0].OK() || !strings.Contains(cs[0].Summary, " files (") {
		t.Fatalf("clean ext4: %+v", cs)
	}
	recoverytest.CorruptExt(t, img, 0)
	before, _ := os.ReadFile(img)
	cs = checkImage(t, img)
	if len(cs) != 1 || cs[0].Type != recovery.FSExt4 || cs[0].ExitStatus == 0 || cs[0].Result != recovery.ResultErrors || cs[0].OK() ||
		cs[0].Summary != "WARNING: Filesystem still has errors" || cs[0].Output == "" {
		t.Fatalf("corrupted ext4: %+v", cs)
	}
	if after, _ := os.ReadFile(img); string(after) != string(before) {
		t.Error("the check changed the image")
	}
}

// TestCheckPartitions: a GPT image with an EFI partition holding nothing,
// an ext4, a swap and an xfs partition: ext4 and xfs are checked through
// read-only loop devices limited to their partitions (the kernel here
// cannot scan partitions), which are detached afterwards; then the ext4
// is corrupted and only it fails.
func TestCheckPartitions(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "losetup", "e2fsck", "xfs_repair")
	ext4 := recoverytest.MakeFS(t, "ext4", 64*recoverytest.MiB)
	xfs := recoverytest.MakeFS(t, "xfs", recoverytest.XFSMinSize)
	swap := recoverytest.MakeFS(t, "swap", 8*recoverytest.MiB)
	img, offs := recoverytest.PartitionedImage(t,
		recoverytest.Part{SizeMiB: 1, Type: "U"},
		recoverytest.Part{SizeMiB: 64, Type: "L", FS: ext4},
		recoverytest.Part{SizeMiB: 8, Type: "S", FS: swap},
		recoverytest.Part{SizeMiB: 300, Type: "L", FS: xfs})
	cs := checkImage(t, img)
	noLoopOn(t, img)
	want := []struct {
		part   int
		typ    string
		tool   string
		result string
	}{
		{1, "", "", recovery.ResultUnknown},
		{2, recovery.FSExt4, "e2fsck -fn", recovery.ResultClean},
		{3, recovery.FSSwap, "", recovery.ResultUnsupported},
		{4, recovery.FSXFS, "xfs_repair -n", recovery.ResultClean},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d checks, want %d: %+v", len(cs), len(want), cs)
	}
	for i, w := range want {
		c := cs[i]
		if c.Partition != w.part || c.Offset != offs[i] || c.Type != w.typ || c.Tool != w.tool || c.Result != w.result || !c.OK() {
			t.Errorf("partition %d: %+v, want %+v at %d", i+1, c, w, offs[i])
		}
	}
	if cs[3].Summary != "no corruption found" || cs[3].ExitStatus != 0 {
		t.Errorf("xfs: %+v", cs[3])
	}
	recoverytest.CorruptExt(t, img, offs[1])
	cs = checkImage(t, img)
	noLoopOn(t, img)
	if cs[1].Result != recovery.ResultErrors || cs[1].OK() || cs[1].ExitStatus == 0 || cs[3].Result != recovery.ResultClean {
		t.Errorf("corrupted ext4 partition: %+v", cs)
	}
}

// TestCheckNothing: an image with neither a table nor a filesystem, or a
// Linux partition with no filesystem, is "unrecognized", which is not OK.
func TestCheckNothing(t *testing.T) {
	img := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "swap", 8*recoverytest.MiB))
	if err := os.Truncate(img, 0); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 8*recoverytest.MiB)
	cs := checkImage(t, img)
	if len(cs) != 1 || cs[0].Result != recovery.ResultUnrecognized || cs[0].OK() {
		t.Errorf("blank image: %+v", cs)
	}
	img, _ = recoverytest.PartitionedImage(t, recoverytest.Part{SizeMiB: 4, Type: "L"})
	cs = checkImage(t, img)
	if len(cs) != 1 || cs[0].Partition != 1 || cs[0].Result != recovery.ResultUnrecognized || cs[0].OK() {
		t.Errorf("empty Linux partition: %+v", cs)
	}
}

// TestCheckCanceled: a check canceled before it runs reports failure, not
// success, and leaves no loop device.
func TestCheckCanceled(t *testing.T) {
	testenv.RequireCommand(t, "e2fsck")
	img := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "ext4", 16*recoverytest.MiB))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cs, err := (&recovery.Checker{}).CheckImage(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Result != recovery.ResultFailed || cs[0].OK() {
		t.Errorf("canceled: %+v", cs)
	}
}
