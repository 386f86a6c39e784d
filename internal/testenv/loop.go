//go:build linux

package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LoopDevice is a loop device attached by NewLoop. It is detached when the test
// ends.
type LoopDevice struct {
	Path    string // /dev/loopN
	Backing string // the backing file (absolute path)
	Size    int64  // size of the whole device in bytes, as the kernel reports it

	t          testing.TB
	name       string // loopN
	dev        uint64 // device number of /dev/loopN
	sysBacking string // backing_file as the kernel showed it right after attach
	nparts     int
	made       []madeNode // device nodes this package created

	detachOnce sync.Once
	detachErr  error
}

type madeNode struct {
	path string
	dev  uint64
}

// LoopOption configures NewLoop.
type LoopOption func(*loopConfig)

type loopConfig struct {
	backing    string
	directIO   bool
	sectorSize int
	partsMiB   []int
	scanParts  int // WithPartScan
}

// WithBacking makes NewLoop use the file at path as backing file instead of a
// new file in t.TempDir(). The file is created if it does not exist; if size is
// not 0 it is truncated or extended to size bytes (extension is sparse), and if
// size is 0 its current size is used. The file is not removed on cleanup.
func WithBacking(path string) LoopOption {
	return func(c *loopConfig) { c.backing = path }
}

// WithDirectIO attaches with losetup --direct-io=on: the loop driver then
// accesses the backing file with O_DIRECT. NewLoop fails the test if the
// kernel did not enable it (the backing filesystem must support O_DIRECT).
func WithDirectIO() LoopOption {
	return func(c *loopConfig) { c.directIO = true }
}

// WithSectorSize sets the logical sector size of the loop device (losetup
// --sector-size; 512, 1024, 2048 or 4096).
func WithSectorSize(n int) LoopOption {
	return func(c *loopConfig) { c.sectorSize = n }
}

// WithPartitions attaches with partition scanning, writes a GPT label with one
// partition per size (in MiB, in order, 1 MiB aligned, the first at 1 MiB)
// with sfdisk, makes the kernel add the partitions (its own re-read, else
// partx --update, since a kernel without a GPT parser finds none) and waits
// until /dev/loopNpK exist (creating the nodes with mknod if no devtmpfs or
// udev does). The device must be
// at least 2 MiB larger than the sum of the sizes (alignment and the backup
// GPT).
func WithPartitions(sizesMiB ...int) LoopOption {
	return func(c *loopConfig) { c.partsMiB = append([]int(nil), sizesMiB...) }
}

var loopLine = regexp.MustCompile(`^/dev/loop[0-9]+$`)

// NewLoop creates a sparse backing file of size bytes (in t.TempDir() unless
// WithBacking gives a path) and attaches it to a free loop device with
// losetup --find --show. A cleanup registered with t.Cleanup releases any write
// held by a SlowFS the backing file lives on, detaches the device and waits
// until the kernel has released it (and its partitions), also when the test
// fails or panics. NewLoop skips or fails the test (see RequireRoot) if root,
// losetup, the loop driver or, for WithPartitions, sfdisk is missing.
//
// If the backing file is on a SlowFS, create the SlowFS first (see the package
// documentation about cleanup order).
func NewLoop(t testing.TB, size int64, opts ...LoopOption) *LoopDevice {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "losetup")
	requirePath(t, "/dev/loop-control", "the loop driver (/dev/loop-control; modprobe loop)")
	var c loopConfig
	for _, o := range opts {
		o(&c)
	}
	if len(c.partsMiB) > 0 {
		RequireCommand(t, "sfdisk", "partx")
	}
	if size < 0 || (size == 0 && c.backing == "") {
		t.Fatalf("testenv: NewLoop: invalid size %d", size)
	}
	sector := int64(512)
	if c.sectorSize != 0 {
		if c.sectorSize < 512 || c.sectorSize > 4096 || c.sectorSize&(c.sectorSize-1) != 0 {
			t.Fatalf("testenv: NewLoop: invalid sector size %d (512, 1024, 2048 or 4096)", c.sectorSize)
		}
		sector = int64(c.sectorSize)
	}

	backing := c.backing
	if backing == "" {
		backing = filepath.Join(t.TempDir(), "lifeboat-loop.img")
	} else if abs, err := filepath.Abs(backing); err == nil {
		backing = abs
	}
	size, err := prepareBacking(backing, size)
	if err != nil {
		t.Fatalf("testenv: NewLoop: backing file: %v", err)
	}
	if size%sector != 0 {
		t.Fatalf("testenv: NewLoop: size %d is not a multiple of the sector size %d", size, sector)
	}
	if len(c.partsMiB) > 0 {
		sum := int64(0)
		for _, p := range c.partsMiB {
			if p <= 0 {
				t.Fatalf("testenv: NewLoop: WithPartitions: invalid partition size %d MiB", p)
			}
			sum += int64(p)
		}
		if need := (sum + 2) << 20; size < need {
			t.Fatalf("testenv: NewLoop: WithPartitions%v needs a device of at least %d bytes (sizes + 2 MiB), got %d",
				c.partsMiB, need, size)
		}
	}

	args := []string{"--find", "--show"}
	if c.directIO {
		args = append(args, "--direct-io=on")
	}
	if c.sectorSize != 0 {
		args = append(args, "--sector-size", strconv.Itoa(c.sectorSize))
	}
	if len(c.partsMiB) > 0 || c.scanParts > 0 {
		args = append(args, "--partscan")
	}
	args = append(args, backing)
	out, err := runCmd(30*time.Second, "", "losetup", args...)
	if err != nil {
		t.Fatalf("testenv: NewLoop: attaching %s: %v", backing, err)
	}
	path := ""
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); loopLine.MatchString(line) {
			path = line
		}
	}
	if path == "" {
		t.Fatalf("testenv: NewLoop: losetup %s printed no device name: %q", strings.Join(args, " "), out)
	}
	l := &LoopDevice{Path: path, Backing: backing, t: t, name: filepath.Base(path)}
	// The kernel's view of the backing file identifies our attachment; read
	// it before registering the cleanup, which detaches only while it holds.
	l.sysBacking, err = readTrim(l.sysDir() + "/loop/backing_file")
	if err != nil {
		// Cannot identify it: detach by name right away, then fail.
		_, derr := runCmd(30*time.Second, "", "losetup", "--detach", path)
		t.Fatalf("testenv: NewLoop: %s attached but its backing file is unreadable: %v (detach: %v)", path, err, derr)
	}
	t.Cleanup(func() {
		if err := l.Detach(); err != nil {
			t.Errorf("testenv: cleanup of %s: %v", l.Path, err)
		}
	})

	created, err := ensureNode(path, l.sysDir(), 2*time.Second)
	if err != nil {
		t.Fatalf("testenv: NewLoop: device node: %v", err)
	}
	l.dev, err = sysDevNumber(l.sysDir())
	if err != nil {
		t.Fatalf("testenv: NewLoop: %v", err)
	}
	if created {
		l.made = append(l.made, madeNode{path, l.dev})
	}
	sectors, err := readInt(l.sysDir() + "/size")
	if err != nil {
		t.Fatalf("testenv: NewLoop: %v", err)
	}
	l.Size = sectors * 512
	if l.Size != size {
		t.Fatalf("testenv: NewLoop: %s has %d bytes, want %d", path, l.Size, size)
	}
	if c.directIO {
		if dio, err := readTrim(l.sysDir() + "/loop/dio"); err != nil || dio != "1" {
			t.Fatalf("testenv: NewLoop: %s: direct I/O requested but not enabled by the kernel (loop/dio=%q, %v); losetup said %q",
				path, dio, err, out)
		}
	}
	if c.sectorSize != 0 {
		if lbs, err := readInt(l.sysDir() + "/queue/logical_block_size"); err != nil || lbs != int64(c.sectorSize) {
			t.Fatalf("testenv: NewLoop: %s: logical block size %d (%v), want %d", path, lbs, err, c.sectorSize)
		}
	}
	if c.scanParts > 0 {
		if err := l.scanPartitions(c.scanParts); err != nil {
			t.Fatalf("testenv: NewLoop: partitions of %s: %v", path, err)
		}
	}
	if len(c.partsMiB) > 0 {
		if err := l.partition(c.partsMiB); err != nil {
			t.Fatalf("testenv: NewLoop: partitioning %s: %v", path, err)
		}
	}
	return l
}

func prepareBacking(path string, size int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file (%v)", path, st.Mode())
	}
	if size == 0 {
		if st.Size() == 0 {
			return 0, fmt.Errorf("%s is empty and no size was given", path)
		}
		return st.Size(), nil
	}
	if st.Size() != size {
		if err := f.Truncate(size); err != nil {
			return 0, fmt.Errorf("truncate %s to %d: %w", path, size, err)
		}
	}
	return size, nil
}

func (l *LoopDevice) sysDir() string { return "/sys/block/" + l.name }

// Name returns the kernel name of the device, "loopN".
func (l *LoopDevice) Name() string { return l.name }

// Dev returns the major and minor number of the whole device.
func (l *LoopDevice) Dev() (major, minor uint32) { return unix.Major(l.dev), unix.Minor(l.dev) }

// Partition returns the device node of partition k (1-based), "/dev/loopNpK".
func (l *LoopDevice) Partition(k int) string { return fmt.Sprintf("%sp%d", l.Path, k) }

// PartitionStart returns the byte offset of partition k on the whole disk,
// read from /sys/class/block/loopNpK/start (always in 512-byte units). It fails
// the test if the partition does not exist; call it from the test goroutine.
func (l *LoopDevice) PartitionStart(k int) int64 {
	l.t.Helper()
	v, err := readInt(fmt.Sprintf("/sys/class/block/%sp%d/start", l.name, k))
	if err != nil {
		l.t.Fatalf("testenv: PartitionStart(%d) of %s: %v", k, l.Path, err)
	}
	return v * 512
}

// PartitionSize returns the size of partition k in bytes (from sysfs). It
// fails the test if the partition does not exist.
func (l *LoopDevice) PartitionSize(k int) int64 {
	l.t.Helper()
	v, err := readInt(fmt.Sprintf("/sys/class/block/%sp%d/size", l.name, k))
	if err != nil {
		l.t.Fatalf("testenv: PartitionSize(%d) of %s: %v", k, l.Path, err)
	}
	return v * 512
}

func (l *LoopDevice) partition(sizesMiB []int) error {
	var script strings.Builder
	script.WriteString("label: gpt\n")
	for _, s := range sizesMiB {
		fmt.Fprintf(&script, ",%dM\n", s)
	}
	out, err := runCmd(60*time.Second, script.String(), "sfdisk", "--wipe", "always", "--wipe-partitions", "always", l.Path)
	if err != nil {
		return err
	}
	l.nparts = len(sizesMiB)
	partSys := func(k int) string { return fmt.Sprintf("/sys/class/block/%sp%d", l.name, k) }
	all := func() bool {
		for k := 1; k <= len(sizesMiB); k++ {
			if _, err := os.Stat(partSys(k)); err != nil {
				return false
			}
		}
		return true
	}
	if !waitFor(200*time.Millisecond, all) {
		// sfdisk's BLKRRPART found nothing: the kernel may have no GPT
		// parser built in (CONFIG_EFI_PARTITION unset, as on this
		// project's test kernel). partx reads the table in user space
		// and adds the partitions with BLKPG.
		pout, err := runCmd(30*time.Second, "", "partx", "--update", l.Path)
		if err != nil {
			return fmt.Errorf("partitions did not appear after sfdisk (output %q), and partx failed: %v", out, err)
		}
		if !waitFor(5*time.Second, all) {
			return fmt.Errorf("partitions did not appear in /sys/class/block after sfdisk and partx --update; sfdisk said %q, partx %q", out, pout)
		}
	}
	for k, s := range sizesMiB {
		k++
		created, err := ensureNode(l.Partition(k), partSys(k), time.Second)
		if err != nil {
			return err
		}
		if created {
			dev, _ := sysDevNumber(partSys(k))
			l.made = append(l.made, madeNode{l.Partition(k), dev})
		}
		got, err := readInt(partSys(k) + "/size")
		if err != nil {
			return err
		}
		if got*512 != int64(s)<<20 {
			return fmt.Errorf("partition %d has %d bytes, want %d MiB; sfdisk said %q", k, got*512, s, out)
		}
	}
	return nil
}

// attachedToUs reports whether the device is still attached to the backing
// file NewLoop attached it to.
func (l *LoopDevice) attachedToUs() bool {
	s, err := readTrim(l.sysDir() + "/loop/backing_file")
	if err != nil {
		return false // ENOENT: not attached at all
	}
	trim := func(s string) string { return strings.TrimSuffix(s, " (deleted)") }
	return trim(s) == trim(l.sysBacking)
}

// released reports whether the kernel is done with our attachment: not
// attached to our backing file, and (if it is not attached to anything else
// meanwhile) its partitions are gone.
func (l *LoopDevice) released() bool {
	s, err := readTrim(l.sysDir() + "/loop/backing_file")
	if err == nil {
		trim := func(s string) string { return strings.TrimSuffix(s, " (deleted)") }
		return trim(s) != trim(l.sysBacking) // reused by someone else: ours is gone
	}
	for k := 1; k <= l.nparts; k++ {
		if _, err := os.Stat(fmt.Sprintf("/sys/class/block/%sp%d", l.name, k)); err == nil {
			return false
		}
	}
	return true
}

// Detach releases writes held on a SlowFS below the device, detaches the
// device and waits until the kernel has released it, then removes device
// nodes this package created. It is idempotent and is called by the cleanup
// that NewLoop registers; call it earlier to detach in the middle of a test.
func (l *LoopDevice) Detach() error {
	l.detachOnce.Do(func() { l.detachErr = l.detach() })
	return l.detachErr
}

func (l *LoopDevice) detach() error {
	// A held write would keep the loop queue from freezing: detach would
	// then wait forever.
	releaseHoldsUnder(l.Backing, strings.TrimSuffix(l.sysBacking, " (deleted)"))
	var errs []error
	if l.attachedToUs() {
		if _, err := runCmd(30*time.Second, "", "losetup", "--detach", l.Path); err != nil && l.attachedToUs() {
			errs = append(errs, err)
		}
	}
	if !waitFor(15*time.Second, l.released) {
		holders, _ := os.ReadDir(l.sysDir() + "/holders")
		var hn []string
		for _, h := range holders {
			hn = append(hn, h.Name())
		}
		errs = append(errs, fmt.Errorf("%s not released by the kernel 15s after losetup --detach "+
			"(still open by someone? then it detaches on last close; holders %v)", l.Path, hn))
	}
	for i := len(l.made) - 1; i >= 0; i-- {
		if err := removeNode(l.made[i].path, l.made[i].dev); err != nil {
			errs = append(errs, fmt.Errorf("removing device node %s: %w", l.made[i].path, err))
		}
	}
	return errors.Join(errs...)
}
