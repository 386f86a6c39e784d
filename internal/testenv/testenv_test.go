//go:build linux

package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ---- helpers -------------------------------------------------------------

// alignedBuf returns n bytes aligned to 4096 (for O_DIRECT) filled with a
// pattern derived from seed.
func alignedBuf(n int, seed byte) []byte {
	b := make([]byte, n+4096)
	skip := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	b = b[skip : skip+n]
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
	return b
}

// openDev opens path and closes it on cleanup. Closing an *os.File while
// another goroutine is inside WriteAt defers the real close(2) until that
// call returns.
func openDev(t *testing.T, path string, flags int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pwriteAsync(f *os.File, b []byte, off int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		n, err := f.WriteAt(b, off)
		if err == nil && n != len(b) {
			err = fmt.Errorf("short write %d of %d", n, len(b))
		}
		done <- err
	}()
	return done
}

// within runs fn and fails the test if it does not return within d.
func withTimeout(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: did not return within %v (deadlock?)", what, d)
	}
}

func readAtDirect(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	b := alignedBuf(n, 0)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %s at %d: %v", path, off, err)
	}
	return b
}

func isBlockDev(t *testing.T, path string) {
	t.Helper()
	if _, err := blockDevNumber(path); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func loopHolds(name, backingPrefix string) bool {
	s, err := readTrim("/sys/block/" + name + "/loop/backing_file")
	return err == nil && strings.HasPrefix(s, backingPrefix)
}

func inflight(t *testing.T, name string) (reads, writes int) {
	t.Helper()
	s, err := readTrim("/sys/block/" + name + "/inflight")
	if err != nil {
		t.Fatalf("inflight: %v", err)
	}
	fmt.Sscanf(s, "%d %d", &reads, &writes)
	return
}

// fakeTB records what a helper reports and collects cleanups instead of
// failing or cleaning up the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	skip     string
	errs     []string
	cleanups []func()
}

type fakeStop struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, a...)
	f.mu.Unlock()
	panic(fakeStop{})
}
func (f *fakeTB) Skipf(format string, a ...any) {
	f.mu.Lock()
	f.skip = fmt.Sprintf(format, a...)
	f.mu.Unlock()
	panic(fakeStop{})
}
func (f *fakeTB) Errorf(format string, a ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

// call runs fn with tb, turning its Fatalf/Skipf into a return.
func call(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fakeStop); !ok {
				panic(r)
			}
		}
	}()
	fn()
}

// ---- requirements --------------------------------------------------------

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "TRUE": true, "false": false, "": false, "yes": false} {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
}

// TestRequireHere: this package's own tests need all of it.
func TestRequireHere(t *testing.T) {
	RequireRoot(t)
	RequireBPF(t)
	RequireCommand(t, "losetup", "sfdisk", "partx")
}

func TestRequireSkipsOutsideCIFailsInCI(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		call(func() { RequireCommand(f, "sh", "lifeboat-no-such-command") })
		if ci == "true" {
			if f.fatal == "" || f.skip != "" || !strings.Contains(f.fatal, "lifeboat-no-such-command") {
				t.Errorf("CI=true: want a failure naming the command, got fatal=%q skip=%q", f.fatal, f.skip)
			}
		} else if f.skip == "" || f.fatal != "" || !strings.Contains(f.skip, "lifeboat-no-such-command") || strings.Contains(f.skip, "\n") {
			t.Errorf("CI unset: want a one-line skip naming the command, got fatal=%q skip=%q", f.fatal, f.skip)
		}
		f = &fakeTB{TB: t}
		call(func() { RequireCommand(f, "sh") })
		if f.fatal != "" || f.skip != "" {
			t.Errorf("RequireCommand(sh): fatal=%q skip=%q", f.fatal, f.skip)
		}
	}
}

// ---- loop devices --------------------------------------------------------

func TestLoop(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	var name, backing string
	t.Run("use", func(t *testing.T) {
		l := NewLoop(t, 16<<20)
		name, backing = l.Name(), l.Backing
		isBlockDev(t, l.Path)
		if l.Size != 16<<20 {
			t.Fatalf("Size = %d", l.Size)
		}
		if st, err := os.Stat(l.Backing); err != nil || st.Size() != 16<<20 {
			t.Fatalf("backing %s: %v %v", l.Backing, st, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(l.Backing, &st); err != nil || st.Blocks != 0 {
			t.Fatalf("backing file not sparse: %d blocks, %v", st.Blocks, err)
		}
		if maj, _ := l.Dev(); maj != 7 {
			t.Errorf("loop major %d, want 7", maj)
		}
		f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
		buf := alignedBuf(8192, 3)
		if _, err := f.WriteAt(buf, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(buf))
		bf, err := os.Open(l.Backing)
		if err != nil {
			t.Fatal(err)
		}
		defer bf.Close()
		if _, err := bf.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, buf) {
			t.Fatalf("backing file does not hold the written data (%v)", err)
		}
	})
	if loopHolds(name, backing) {
		t.Fatalf("%s still attached to %s after cleanup", name, backing)
	}
	if _, err := os.Stat(backing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp backing file %s not removed: %v", backing, err)
	}
}

func TestLoopDirectIOSectorSize(t *testing.T) {
	l := NewLoop(t, 8<<20, WithDirectIO(), WithSectorSize(4096))
	if dio, _ := readTrim("/sys/block/" + l.Name() + "/loop/dio"); dio != "1" {
		t.Errorf("dio = %q", dio)
	}
	if lbs, _ := readInt("/sys/block/" + l.Name() + "/queue/logical_block_size"); lbs != 4096 {
		t.Errorf("logical block size %d", lbs)
	}
	f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
	buf := alignedBuf(4096, 9)
	if _, err := f.WriteAt(buf, 4096*5); err != nil {
		t.Fatal(err)
	}
	if got := readAtDirect(t, l.Path, 4096*5, 4096); !bytes.Equal(got, buf) {
		t.Fatal("read back differs")
	}
}

func TestLoopWithBackingDetach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.img")
	content := bytes.Repeat([]byte("lifeboat"), 4<<20/8)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLoop(t, 0, WithBacking(path)) // size 0: keep the file's size
	if l.Size != int64(len(content)) || l.Backing != path {
		t.Fatalf("Size %d Backing %s", l.Size, l.Backing)
	}
	if got := readAtDirect(t, l.Path, 4096, 4096); !bytes.Equal(got, content[4096:8192]) {
		t.Fatal("loop device does not show the backing file's data")
	}
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
	if loopHolds(l.Name(), path) {
		t.Fatal("still attached after Detach")
	}
	if err := l.Detach(); err != nil { // idempotent; cleanup calls it again
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("WithBacking file removed: %v", err)
	}
}

func TestLoopPartitions(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprintf("sector%d", ss), func(t *testing.T) {
			var name, backing string
			t.Run("use", func(t *testing.T) {
				l := NewLoop(t, 64<<20, WithSectorSize(ss), WithPartitions(8, 16, 4))
				name, backing = l.Name(), l.Backing
				wantStart := []int64{1 << 20, 9 << 20, 25 << 20}
				wantSize := []int64{8 << 20, 16 << 20, 4 << 20}
				for k := 1; k <= 3; k++ {
					isBlockDev(t, l.Partition(k))
					if got := l.PartitionStart(k); got != wantStart[k-1] {
						t.Errorf("PartitionStart(%d) = %d, want %d", k, got, wantStart[k-1])
					}
					if got := l.PartitionSize(k); got != wantSize[k-1] {
						t.Errorf("PartitionSize(%d) = %d, want %d", k, got, wantSize[k-1])
					}
				}
				if l.Partition(2) != l.Path+"p2" {
					t.Errorf("Partition(2) = %s", l.Partition(2))
				}
				// Writing at offset 0 of partition 2 changes the disk at its start.
				before := readAtDirect(t, l.Path, l.PartitionStart(2), 8192)
				buf := alignedBuf(8192, 42)
				if bytes.Equal(before, buf) {
					t.Fatal("pattern already on disk")
				}
				p := openDev(t, l.Partition(2), os.O_RDWR|syscall.O_DIRECT)
				if _, err := p.WriteAt(buf, 0); err != nil {
					t.Fatal(err)
				}
				if got := readAtDirect(t, l.Path, l.PartitionStart(2), 8192); !bytes.Equal(got, buf) {
					t.Fatal("write to partition 2 at 0 is not on the whole disk at PartitionStart(2)")
				}
				// and not at the start of partition 1
				if got := readAtDirect(t, l.Partition(1), 0, 8192); bytes.Equal(got, buf) {
					t.Fatal("partition 1 shows partition 2's data")
				}
			})
			if loopHolds(name, backing) {
				t.Errorf("%s still attached", name)
				return
			}
			if loopHolds(name, "/") {
				return // reused by someone else meanwhile
			}
			for k := 1; k <= 3; k++ {
				if _, err := os.Stat(fmt.Sprintf("/sys/class/block/%sp%d", name, k)); err == nil {
					t.Errorf("partition %d of %s still there after cleanup", k, name)
				}
			}
		})
	}
}

// TestEnsureNodeMknod exercises the no-udev fallback: a node that does not
// appear is created with mknod from sysfs, and removed again.
func TestEnsureNodeMknod(t *testing.T) {
	l := NewLoop(t, 1<<20)
	node := filepath.Join(t.TempDir(), l.Name())
	created, err := ensureNode(node, "/sys/class/block/"+l.Name(), 10*time.Millisecond)
	if err != nil || !created {
		t.Fatalf("ensureNode: created=%v err=%v", created, err)
	}
	got, err := blockDevNumber(node)
	if err != nil || got != l.dev {
		t.Fatalf("node is %d (%v), want %d", got, err, l.dev)
	}
	// An existing right node is accepted, not recreated.
	if created, err := ensureNode(node, "/sys/class/block/"+l.Name(), time.Second); err != nil || created {
		t.Fatalf("second ensureNode: created=%v err=%v", created, err)
	}
	// A node for another device is refused.
	if _, err := ensureNode(node, "/sys/class/block/"+"loop-control-nonexistent", time.Millisecond); err == nil {
		t.Fatal("ensureNode with a bad sysfs dir succeeded")
	}
	if err := removeNode(node, l.dev); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(node); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("node not removed: %v", err)
	}
}

func TestLoopPartitionsTooSmall(t *testing.T) {
	RequireRoot(t)
	f := &fakeTB{TB: t}
	call(func() { NewLoop(f, 16<<20, WithPartitions(8, 8)) })
	f.runCleanups()
	if !strings.Contains(f.fatal, "at least") {
		t.Fatalf("want a clear size error, got %q", f.fatal)
	}
}

// ---- zram ----------------------------------------------------------------

func TestZram(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	var idx int
	t.Run("use", func(t *testing.T) {
		z := NewZram(t, 32<<20)
		idx = z.Index
		isBlockDev(t, z.Path)
		if z.Size != 32<<20 {
			t.Errorf("Size = %d", z.Size)
		}
		if sz, _ := readInt(fmt.Sprintf("/sys/block/zram%d/size", idx)); sz*512 != 32<<20 {
			t.Errorf("sysfs size %d sectors", sz)
		}
		f := openDev(t, z.Path, os.O_RDWR|syscall.O_DIRECT)
		buf := alignedBuf(16384, 5)
		if _, err := f.WriteAt(buf, 1<<20); err != nil {
			t.Fatal(err)
		}
		if got := readAtDirect(t, z.Path, 1<<20, 16384); !bytes.Equal(got, buf) {
			t.Fatal("read back differs")
		}
	})
	if _, err := os.Stat(fmt.Sprintf("/sys/block/zram%d", idx)); err == nil {
		t.Errorf("zram%d still exists after cleanup", idx)
	}
	if _, err := os.Stat(fmt.Sprintf("/dev/zram%d", idx)); err == nil {
		t.Errorf("/dev/zram%d still exists after cleanup", idx)
	}
}

// ---- bpffs ---------------------------------------------------------------

func TestBPFFSDir(t *testing.T) {
	RequireBPF(t)
	var dir string
	t.Run("use", func(t *testing.T) {
		dir = BPFFSDir(t)
		if filepath.Dir(dir) != "/sys/fs/bpf" || !strings.HasPrefix(filepath.Base(dir), "lifeboat-test-") {
			t.Fatalf("dir %s", dir)
		}
		if other := BPFFSDir(t); other == dir {
			t.Fatal("not unique")
		}
		if err := os.Mkdir(dir+"/sub", 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{dir + "/map", dir + "/sub/map"} {
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Pin(p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(dir + "/sub/map"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists after cleanup: %v", dir, err)
	}
}

// ---- SlowFS ----------------------------------------------------------------

func TestSlowFSFile(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	var mp string
	t.Run("use", func(t *testing.T) {
		s := NewSlowFS(t)
		mp = s.Mountpoint
		if !mounted(mp) {
			t.Fatal("not mounted")
		}
		p := s.CreateFile("a", 64<<20)
		st, err := os.Stat(p)
		if err != nil || st.Size() != 64<<20 {
			t.Fatalf("stat %s: %v %v", p, st, err)
		}
		f := openDev(t, p, os.O_RDWR)
		data := []byte("hello, slow world")
		if _, err := f.WriteAt(data, 5<<20+65530); err != nil { // crosses a chunk
			t.Fatal(err)
		}
		got := make([]byte, len(data)+4)
		if _, err := f.ReadAt(got, 5<<20+65528); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(append([]byte{0, 0}, data...), 0, 0)) {
			t.Fatalf("read back %q", got)
		}
		// Writes reach the handler synchronously and can be held.
		n := s.Writes()
		s.Hold()
		done := pwriteAsync(f, []byte("held"), 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.WaitHeld(ctx, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("write returned while held: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		s.Release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s.Writes() != n+1 {
			t.Errorf("Writes went from %d to %d, want +1", n, s.Writes())
		}
		// O_CREAT, truncate, unlink, fallocate work.
		q := filepath.Join(mp, "created")
		if err := os.WriteFile(q, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(q, 1<<20); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(q); err != nil || st.Size() != 1<<20 {
			t.Fatalf("after truncate: %v %v", st, err)
		}
		if err := os.Remove(q); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 5<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(got, 5<<20+65528); err != nil || !bytes.Equal(got, make([]byte, len(got))) {
			t.Fatalf("punched range not zero: %q %v", got, err)
		}
		if s.Fallocates() != 1 {
			t.Errorf("Fallocates = %d", s.Fallocates())
		}
	})
	if mounted(mp) {
		t.Fatalf("%s still mounted after cleanup", mp)
	}
	if _, err := os.Stat(mp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mountpoint %s not removed: %v", mp, err)
	}
}

// TestSlowFSLoopHoldsWrite is the reason SlowFS exists: an O_DIRECT block write
// to a loop device over a SlowFS file stays in flight until Release.
func TestSlowFSLoopHoldsWrite(t *testing.T) {
	s := NewSlowFS(t) // before the loop device: cleanups run in reverse
	img := s.CreateFile("disk.img", 16<<20)
	l := NewLoop(t, 16<<20, WithBacking(img))
	if dio, _ := readTrim("/sys/block/" + l.Name() + "/loop/dio"); dio != "0" {
		t.Errorf("loop uses direct I/O on the FUSE file (dio=%q), want buffered", dio)
	}
	f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
	buf := alignedBuf(4096, 77)
	before := s.Writes()

	s.Hold()
	done := pwriteAsync(f, buf, 8192)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("block write returned while its FUSE write is held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, w := inflight(t, l.Name()); w < 1 {
		t.Errorf("/sys/block/%s/inflight shows %d writes in flight while held, want >= 1", l.Name(), w)
	}
	if s.Held() != 1 {
		t.Errorf("Held = %d, want 1", s.Held())
	}
	s.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("block write failed after release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("block write did not return after Release")
	}
	if got := s.Writes() - before; got != 1 {
		t.Errorf("a 4 KiB block write made %d FUSE writes, want 1", got)
	}
	if got := readAtDirect(t, l.Path, 8192, 4096); !bytes.Equal(got, buf) {
		t.Fatal("loop device does not read back the data")
	}
	// The data is in the SlowFS file at the same offset (read from this
	// goroutine, never from a handler).
	got := make([]byte, 4096)
	bf, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	if _, err := bf.ReadAt(got, 8192); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("SlowFS file does not hold the data: %v", err)
	}
	withTimeout(t, 10*time.Second, "fsync of the loop device", f.Sync)
	withTimeout(t, 10*time.Second, "fdatasync of the SlowFS file", func() error { return unix.Fdatasync(int(bf.Fd())) })
}

// TestSlowFSLoopFlushWhileHeld: a flush (fsync) issued while a write is held
// completes after Release; nothing deadlocks.
func TestSlowFSLoopFlushWhileHeld(t *testing.T) {
	s := NewSlowFS(t)
	l := NewLoop(t, 8<<20, WithBacking(s.CreateFile("disk.img", 8<<20)))
	f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
	s.Hold()
	wdone := pwriteAsync(f, alignedBuf(4096, 1), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- f.Sync() }()
	select {
	case err := <-sdone:
		t.Logf("observed: fsync of the loop device returned (%v) while a write was held", err)
	case <-time.After(300 * time.Millisecond):
		t.Logf("observed: fsync of the loop device waits while a write is held")
	}
	s.Release()
	for _, c := range []<-chan error{wdone, sdone} {
		select {
		case err := <-c:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("write or fsync did not return after Release")
		}
	}
}

// TestSlowFSLoopBufferedWriteback: page-cache writeback of a buffered write to
// the loop device reaches the FUSE handler and is held too.
func TestSlowFSLoopBufferedWriteback(t *testing.T) {
	s := NewSlowFS(t)
	l := NewLoop(t, 8<<20, WithBacking(s.CreateFile("disk.img", 8<<20)))
	f := openDev(t, l.Path, os.O_RDWR)
	data := bytes.Repeat([]byte{0xab}, 64<<10)
	s.Hold()
	if _, err := f.WriteAt(data, 1<<20); err != nil { // page cache only
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- f.Sync() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sdone:
		t.Fatalf("fsync returned while writeback was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.Release()
	select {
	case err := <-sdone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fsync did not return after Release")
	}
	if got := readAtDirect(t, l.Path, 1<<20, 64<<10); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}

// TestSlowFSLoopConcurrent reports how many block writes to one loop device
// can be held at once, with buffered and with direct I/O on the backing file.
func TestSlowFSLoopConcurrent(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	for _, dio := range []bool{false, true} {
		t.Run(fmt.Sprintf("dio=%v", dio), func(t *testing.T) {
			s := NewSlowFS(t)
			opts := []LoopOption{WithBacking(s.CreateFile("disk.img", 8<<20))}
			if dio {
				opts = append(opts, WithDirectIO())
			}
			l := NewLoop(t, 8<<20, opts...)
			f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
			s.Hold()
			var dones []<-chan error
			for i := range 8 {
				dones = append(dones, pwriteAsync(f, alignedBuf(4096, byte(i)), int64(i)*65536))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			want := 1
			if dio {
				want = 8 // every block write is its own FUSE write
			}
			if err := s.WaitHeld(ctx, want); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			_, w := inflight(t, l.Name())
			t.Logf("observed: loop dio=%v: %d FUSE writes held at once, %d block writes in flight (/sys/block/%s/inflight)",
				dio, s.Held(), w, l.Name())
			if w != 8 {
				t.Errorf("%d block writes in flight, want all 8", w)
			}
			s.Release()
			for i, c := range dones {
				select {
				case err := <-c:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("write %d did not return after Release", i)
				}
			}
			for i := range 8 {
				if got := readAtDirect(t, l.Path, int64(i)*65536, 4096); !bytes.Equal(got, alignedBuf(4096, byte(i))) {
					t.Fatalf("write %d: read back differs", i)
				}
			}
		})
	}
}

// TestSlowFSLoopDiscard: discard and write-zeroes on the loop device become
// FUSE fallocate, which is held like a write.
func TestSlowFSLoopDiscard(t *testing.T) {
	s := NewSlowFS(t)
	l := NewLoop(t, 8<<20, WithBacking(s.CreateFile("disk.img", 8<<20)))
	f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
	if _, err := f.WriteAt(alignedBuf(1<<20, 4), 1<<20); err != nil {
		t.Fatal(err)
	}
	if max, _ := readInt("/sys/block/" + l.Name() + "/queue/discard_max_bytes"); max == 0 {
		t.Fatalf("loop over SlowFS does not offer discard")
	}
	n := s.Fallocates()
	s.Hold()
	done := make(chan error, 1)
	go func() {
		r := [2]uint64{1 << 20, 512 << 10}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r)))
		if e != 0 {
			done <- fmt.Errorf("BLKDISCARD: %w", e)
			return
		}
		done <- nil
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("discard returned while held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("discard did not return after Release")
	}
	if s.Fallocates() <= n {
		t.Fatalf("discard made no FUSE fallocate")
	}
	if got := readAtDirect(t, l.Path, 1<<20, 512<<10); !bytes.Equal(got, make([]byte, 512<<10)) {
		t.Fatal("discarded range does not read as zeroes")
	}
	if got := readAtDirect(t, l.Path, 1<<20+512<<10, 4096); !bytes.Equal(got, alignedBuf(1<<20, 4)[512<<10:512<<10+4096]) {
		t.Fatal("data after the discarded range changed")
	}
}

// TestSlowFSWrongOrder: a loop device the SlowFS does not know about (attached
// behind testenv's back, with a write held) is detached and reported by the
// SlowFS cleanup, which then unmounts without hanging.
func TestSlowFSWrongOrder(t *testing.T) {
	RequireCommand(t, "losetup")
	RequireRoot(t)
	f := &fakeTB{TB: t}
	var s *SlowFS
	call(func() { s = NewSlowFS(f) })
	if s == nil {
		f.runCleanups()
		t.Fatalf("NewSlowFS: %s%s", f.fatal, f.skip)
	}
	img := s.CreateFile("disk.img", 4<<20)
	out, err := runCmd(30*time.Second, "", "losetup", "--find", "--show", img)
	if err != nil {
		f.runCleanups()
		t.Fatal(err)
	}
	dev := strings.TrimSpace(out)
	t.Cleanup(func() { // in case the SlowFS cleanup fails to
		if loopHolds(filepath.Base(dev), s.Mountpoint) {
			runCmd(30*time.Second, "", "losetup", "--detach", dev)
		}
	})
	d, err := os.OpenFile(dev, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		f.runCleanups()
		t.Fatal(err)
	}
	s.Hold()
	done := pwriteAsync(d, alignedBuf(4096, 1), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		f.runCleanups()
		t.Fatal(err)
	}
	d.Close() // deferred until the write returns
	withTimeout(t, 60*time.Second, "SlowFS cleanup", func() error { f.runCleanups(); return nil })
	if err := <-done; err != nil {
		t.Errorf("held write failed: %v", err)
	}
	if len(f.errs) == 0 || !strings.Contains(strings.Join(f.errs, "\n"), "create the SlowFS before the loop device") {
		t.Errorf("cleanup did not report the leaked loop device: %q", f.errs)
	}
	if loopHolds(filepath.Base(dev), s.Mountpoint) {
		t.Errorf("%s still attached", dev)
	}
	if mounted(s.Mountpoint) {
		t.Errorf("%s still mounted", s.Mountpoint)
	}
}

// ---- cleanup after failure and panic, in a child process -----------------

const helperEnv = "LIFEBOAT_TESTENV_HELPER"

// TestHelperFailingTest is not a test of its own: run by
// TestCleanupAfterFailure in a child process, it creates one of everything,
// holds a block write in flight and then fails or panics. Without the
// environment variable it does nothing.
func TestHelperFailingTest(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	s := NewSlowFS(t)
	l := NewLoop(t, 16<<20, WithBacking(s.CreateFile("disk.img", 16<<20)), WithPartitions(4, 4))
	z := NewZram(t, 8<<20)
	dir := BPFFSDir(t)
	plain := NewLoop(t, 4<<20)
	fmt.Printf("RESOURCE loop %s %s\n", l.Name(), s.Mountpoint)
	fmt.Printf("RESOURCE loop %s %s\n", plain.Name(), plain.Backing)
	fmt.Printf("RESOURCE mount %s\n", s.Mountpoint)
	fmt.Printf("RESOURCE zram %d\n", z.Index)
	fmt.Printf("RESOURCE bpffs %s\n", dir)
	p := openDev(t, l.Partition(2), os.O_RDWR|syscall.O_DIRECT)
	s.Hold()
	pwriteAsync(p, alignedBuf(4096, 1), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fmt.Println("HELD")
	switch mode {
	case "fatal":
		t.Fatalf("INTENTIONAL FAILURE with a write in flight")
	case "panic":
		panic("INTENTIONAL PANIC with a write in flight")
	}
}

func TestCleanupAfterFailure(t *testing.T) {
	RequireRoot(t)
	for _, mode := range []string{"fatal", "panic"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperFailingTest$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if ctx.Err() != nil {
				t.Fatalf("child hung: %s", text)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child should have failed, err=%v: %s", err, text)
			}
			if !strings.Contains(text, "HELD") || !strings.Contains(text, "INTENTIONAL") {
				t.Fatalf("child did not get to the intentional failure:\n%s", text)
			}
			if strings.Contains(text, "testenv: cleanup") {
				t.Errorf("child's cleanups reported errors:\n%s", text)
			}
			n := 0
			for _, line := range strings.Split(text, "\n") {
				f := strings.Fields(line)
				if len(f) < 3 || f[0] != "RESOURCE" {
					continue
				}
				n++
				switch f[1] {
				case "loop":
					if loopHolds(f[2], f[3]) {
						t.Errorf("%s left attached to %s", f[2], f[3])
					}
				case "mount":
					if mounted(f[2]) {
						t.Errorf("%s left mounted", f[2])
					}
				case "zram":
					if _, err := os.Stat("/sys/block/zram" + f[2]); err == nil {
						t.Errorf("zram%s left behind", f[2])
					}
				case "bpffs":
					if _, err := os.Stat(f[2]); err == nil {
						t.Errorf("%s left behind", f[2])
					}
				}
			}
			if n != 5 {
				t.Fatalf("child reported %d resources, want 5:\n%s", n, text)
			}
		})
	}
}

// TestSlowFSLoopReadWhileHeld: what a reader of the loop device sees while a
// write to the same range is held. With --direct-io=on the loop driver submits
// asynchronously, so a read gets through and returns the old data: the case a
// tracker must not ship. With buffered loop I/O the read waits behind the held
// write (one loop worker, synchronous calls).
func TestSlowFSLoopReadWhileHeld(t *testing.T) {
	RequireRoot(t) // the subtests skip or fail the same way
	for _, dio := range []bool{false, true} {
		t.Run(fmt.Sprintf("dio=%v", dio), func(t *testing.T) {
			s := NewSlowFS(t)
			opts := []LoopOption{WithBacking(s.CreateFile("disk.img", 8<<20))}
			if dio {
				opts = append(opts, WithDirectIO())
			}
			l := NewLoop(t, 8<<20, opts...)
			f := openDev(t, l.Path, os.O_RDWR|syscall.O_DIRECT)
			old, new := alignedBuf(4096, 1), alignedBuf(4096, 2)
			if _, err := f.WriteAt(old, 0); err != nil {
				t.Fatal(err)
			}
			r := openDev(t, l.Path, os.O_RDONLY|syscall.O_DIRECT)
			s.Hold()
			done := pwriteAsync(f, new, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.WaitHeld(ctx, 1); err != nil {
				t.Fatal(err)
			}
			type result struct {
				b   []byte
				err error
			}
			rdone := make(chan result, 1)
			go func() {
				b := alignedBuf(4096, 0)
				_, err := r.ReadAt(b, 0)
				rdone <- result{b, err}
			}()
			var got *result
			select {
			case res := <-rdone:
				got = &res
				if res.err != nil {
					t.Fatal(res.err)
				}
				t.Logf("observed: loop dio=%v: a read of the range of a held write returns at once, with the old data: %v",
					dio, bytes.Equal(res.b, old))
				if !bytes.Equal(res.b, old) {
					t.Errorf("read while held returned something else than the old data")
				}
			case <-time.After(500 * time.Millisecond):
				t.Logf("observed: loop dio=%v: a read of the range of a held write waits until the write completes", dio)
			}
			if dio && got == nil {
				t.Errorf("with --direct-io=on a read should not wait behind a held write")
			}
			s.Release()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("write did not return after Release")
			}
			if got == nil {
				select {
				case res := <-rdone:
					if res.err != nil || !bytes.Equal(res.b, new) {
						t.Errorf("read after the write completed: err %v, new data %v", res.err, bytes.Equal(res.b, new))
					}
				case <-time.After(10 * time.Second):
					t.Fatal("read did not return after Release")
				}
			}
		})
	}
}

// TestSlowFSLeakedOpenFile: a file of the SlowFS left open by the test keeps
// the mount busy; the cleanup unmounts lazily, then aborts the connection, and
// returns (with an error) instead of hanging.
func TestSlowFSLeakedOpenFile(t *testing.T) {
	RequireRoot(t)
	f := &fakeTB{TB: t}
	var s *SlowFS
	call(func() { s = NewSlowFS(f) })
	if s == nil {
		f.runCleanups()
		t.Fatalf("NewSlowFS: %s%s", f.fatal, f.skip)
	}
	leaked, err := os.OpenFile(s.CreateFile("x", 4096), os.O_RDWR, 0)
	if err != nil {
		f.runCleanups()
		t.Fatal(err)
	}
	defer leaked.Close()
	start := time.Now()
	withTimeout(t, 60*time.Second, "SlowFS cleanup", func() error { f.runCleanups(); return nil })
	t.Logf("cleanup took %v, reported %q", time.Since(start).Round(time.Millisecond), f.errs)
	if mounted(s.Mountpoint) {
		t.Errorf("%s still mounted", s.Mountpoint)
	}
	if len(f.errs) == 0 {
		t.Errorf("cleanup did not report the busy mount")
	}
	if _, err := leaked.WriteAt([]byte("x"), 0); err == nil {
		t.Errorf("write to a file of an aborted SlowFS succeeded")
	} else {
		t.Logf("write after abort: %v", err)
	}
}
