//go:build linux

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// SlowFS is a FUSE filesystem served by the test process itself, whose writes
// the test can hold in flight at will. A loop device backed by one of its files
// turns that into a block write that stays in flight (queued, not completed)
// until the test calls Release.
//
// Files are opened with FOPEN_DIRECT_IO and the filesystem does not use the
// writeback cache, so every write(2) to a file, and every write a loop
// device makes to it, reaches the handler synchronously: the caller gets its
// result only after the handler returns. Data lives in memory, in 64 KiB
// chunks allocated on first write (sparse).
//
// Held are FUSE WRITE and FALLOCATE requests (a loop device turns discard and
// write-zeroes into fallocate). Reads, fsync, flush and truncate are never
// held.
//
// What a loop device on a SlowFS file does while a write is held (measured on
// Linux 6.18, see the tests):
//   - Buffered loop I/O (the default): the loop worker calls the file
//     synchronously, so one FUSE write is held and every later request to the
//     device (more writes, reads, flushes) queues behind it.
//   - WithDirectIO: the loop driver submits asynchronously and the filesystem
//     grants async direct I/O, so every block write becomes its own held FUSE
//     write (WaitHeld(ctx, n) with n > 1 works), and a read of the same range
//     returns at once with the old data.
type SlowFS struct {
	Mountpoint string

	t      testing.TB
	server *fuse.Server
	root   *slowRoot
	dev    uint64 // st_dev of the mount, to find its fusectl connection

	mu      sync.Mutex
	holding bool
	closed  bool
	gate    chan struct{} // closed by Release; held requests wait on it
	held    int
	changed chan struct{} // closed and replaced whenever held changes
	writes  int
	fallocs int

	closeOnce sync.Once
}

const slowChunk = 64 << 10

// registry of live SlowFS instances, so that a loop device can release the
// holds of the filesystem its backing file lives on before it detaches.
var (
	registryMu sync.Mutex
	registry   = map[*SlowFS]struct{}{}
)

func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// releaseHoldsUnder releases the holds of every SlowFS that path lives on.
func releaseHoldsUnder(paths ...string) {
	registryMu.Lock()
	var hit []*SlowFS
	for s := range registry {
		for _, p := range paths {
			if within(p, s.Mountpoint) {
				hit = append(hit, s)
				break
			}
		}
	}
	registryMu.Unlock()
	for _, s := range hit {
		s.Release()
	}
}

// NewSlowFS mounts a new, empty SlowFS on a fresh directory (Mountpoint).
// A cleanup releases held requests, detaches (and reports) any loop device
// still backed by one of its files, unmounts (lazily if busy) and waits for
// the server to stop; if it does not stop, it aborts the FUSE connection and
// reports an error instead of hanging.
//
// Create the SlowFS before loop devices backed by its files, so that their
// cleanups (which run first) detach them before the unmount.
func NewSlowFS(t testing.TB) *SlowFS {
	t.Helper()
	RequireRoot(t)
	requirePath(t, "/dev/fuse", "FUSE (/dev/fuse; modprobe fuse)")
	dir, err := os.MkdirTemp("", "lifeboat-slowfs-")
	if err != nil {
		t.Fatalf("testenv: NewSlowFS: %v", err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // the kernel shows loop backing files by their real path
	}
	s := &SlowFS{
		Mountpoint: dir,
		t:          t,
		gate:       make(chan struct{}),
		changed:    make(chan struct{}),
	}
	s.root = &slowRoot{s: s}
	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			FsName:            "lifeboat-slowfs",
			Name:              "lifeboat-slowfs",
			DirectMountStrict: true,    // we are root: mount(2), no fusermount
			MaxWrite:          1 << 20, // one FUSE WRITE per block write of up to 1 MiB
			DisableXAttrs:     true,    // no security.capability lookups per write
			// Let the kernel send asynchronous direct I/O (a loop device
			// with --direct-io=on) as concurrent FUSE requests.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	}
	server, err := fs.Mount(dir, s.root, opts)
	if err != nil {
		os.Remove(dir)
		t.Fatalf("testenv: NewSlowFS: mounting FUSE on %s: %v", dir, err)
	}
	s.server = server
	registryMu.Lock()
	registry[s] = struct{}{}
	registryMu.Unlock()
	t.Cleanup(s.close)

	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatalf("testenv: NewSlowFS: stat %s: %v", dir, err)
	}
	s.dev = st.Dev
	return s
}

// CreateFile creates a sparse file of size bytes in the root of the SlowFS
// and returns its full path. It fails the test if the name is taken.
func (s *SlowFS) CreateFile(name string, size int64) string {
	s.t.Helper()
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		s.t.Fatalf("testenv: SlowFS.CreateFile: invalid name %q", name)
	}
	if size < 0 {
		s.t.Fatalf("testenv: SlowFS.CreateFile: invalid size %d", size)
	}
	f := newSlowFile(s, size)
	ch := s.root.NewPersistentInode(context.Background(), f, fs.StableAttr{Mode: syscall.S_IFREG})
	if !s.root.AddChild(name, ch, false) {
		s.t.Fatalf("testenv: SlowFS.CreateFile: %s exists", name)
	}
	return filepath.Join(s.Mountpoint, name)
}

// Hold makes every later WRITE or FALLOCATE request to any file block inside
// the FUSE handler until Release. It has no effect after cleanup started.
func (s *SlowFS) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.holding = true
	}
}

// Release unblocks all held requests (they then complete normally) and stops
// holding. It is safe to call at any time, from any goroutine.
func (s *SlowFS) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holding {
		s.holding = false
		close(s.gate)
		s.gate = make(chan struct{})
	}
}

// WaitHeld returns nil as soon as at least n requests are blocked in the
// handler at the same time, or an error when ctx ends first.
func (s *SlowFS) WaitHeld(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		h, ch := s.held, s.changed
		s.mu.Unlock()
		if h >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("testenv: SlowFS.WaitHeld(%d): %d request(s) held: %w", n, h, ctx.Err())
		}
	}
}

// Held returns the number of requests blocked in the handler right now.
func (s *SlowFS) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Writes returns the number of FUSE WRITE requests received so far (held or
// not, counted when they arrive).
func (s *SlowFS) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Fallocates returns the number of FUSE FALLOCATE requests received so far
// (punch hole, zero range, preallocate).
func (s *SlowFS) Fallocates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fallocs
}

// enter counts a data-changing request and, while holding, blocks until
// Release, cleanup or an interrupt of the request.
func (s *SlowFS) enter(ctx context.Context, counter *int) syscall.Errno {
	s.mu.Lock()
	*counter++
	if !s.holding {
		s.mu.Unlock()
		return 0
	}
	gate := s.gate
	s.held++
	s.notifyLocked()
	s.mu.Unlock()

	var errno syscall.Errno
	select {
	case <-gate:
	case <-ctx.Done(): // FUSE_INTERRUPT: the caller got a signal
		errno = syscall.EINTR
	}

	s.mu.Lock()
	s.held--
	s.notifyLocked()
	s.mu.Unlock()
	return errno
}

func (s *SlowFS) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// close is the cleanup registered by NewSlowFS.
func (s *SlowFS) close() {
	s.closeOnce.Do(func() {
		if err := s.shutdown(); err != nil {
			s.t.Errorf("testenv: cleanup of SlowFS %s: %v", s.Mountpoint, err)
		}
	})
}

func (s *SlowFS) shutdown() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Release()
	registryMu.Lock()
	delete(registry, s)
	registryMu.Unlock()

	var errs []error
	// Loop devices still on our files would keep the filesystem busy, and
	// after a lazy unmount they would keep the server alive for ever.
	for _, dev := range loopsBackedUnder(s.Mountpoint) {
		errs = append(errs, fmt.Errorf("loop device %s still attached to a file of this SlowFS at its cleanup "+
			"(create the SlowFS before the loop device); detaching it", dev))
		if err := detachForeignLoop(dev, s.Mountpoint); err != nil {
			errs = append(errs, err)
		}
	}

	// Unmount: a few polite tries, then lazily.
	var uerr error
	for try := 0; try < 10; try++ {
		uerr = unix.Unmount(s.Mountpoint, 0)
		if uerr == nil || !errors.Is(uerr, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	grace := 10 * time.Second
	if errors.Is(uerr, unix.EBUSY) {
		uerr = unix.Unmount(s.Mountpoint, unix.MNT_DETACH)
		if uerr == nil {
			errs = append(errs, fmt.Errorf("%s was busy (a file still open?); unmounted lazily", s.Mountpoint))
			grace = 2 * time.Second // something still holds it: do not wait long
		}
	}
	if uerr != nil && !errors.Is(uerr, unix.EINVAL) { // EINVAL: not mounted any more
		errs = append(errs, fmt.Errorf("unmount %s: %w", s.Mountpoint, uerr))
	}

	// The serve loops end when the kernel ends the connection, which it does
	// when the last reference to the superblock goes.
	stopped := make(chan struct{})
	go func() {
		s.server.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(grace):
		err := abortFuseConn(s.dev)
		select {
		case <-stopped:
			errs = append(errs, fmt.Errorf("FUSE server still running %v after unmount; aborted the connection", grace))
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("FUSE server still running %v after unmount and abort (abort: %v); leaving it", grace+5*time.Second, err))
		}
	}
	if err := os.Remove(s.Mountpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loopsBackedUnder lists the loop devices whose backing file is under dir.
func loopsBackedUnder(dir string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		s, err := readTrim(f)
		if err != nil {
			continue
		}
		if within(strings.TrimSuffix(s, " (deleted)"), dir) {
			devs = append(devs, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return devs
}

func detachForeignLoop(dev, dir string) error {
	name := filepath.Base(dev)
	onUs := func() bool {
		s, err := readTrim("/sys/block/" + name + "/loop/backing_file")
		return err == nil && within(strings.TrimSuffix(s, " (deleted)"), dir)
	}
	if _, err := runCmd(30*time.Second, "", "losetup", "--detach", dev); err != nil && onUs() {
		return err
	}
	if !waitFor(15*time.Second, func() bool { return !onUs() }) {
		return fmt.Errorf("%s still attached 15s after losetup --detach (still open?)", dev)
	}
	return nil
}

// abortFuseConn aborts the FUSE connection of the mount with device number
// dev through fusectl (mounting fusectl for the moment if needed): all its
// pending and future requests fail with ENOTCONN.
func abortFuseConn(dev uint64) error {
	const ctl = "/sys/fs/fuse/connections"
	// fusectl names connections by the kernel-internal dev_t.
	abort := fmt.Sprintf("%s/%d/abort", ctl, unix.Major(dev)<<20|unix.Minor(dev))
	if _, err := os.Stat(abort); err != nil {
		if merr := unix.Mount("fusectl", ctl, "fusectl", 0, ""); merr != nil {
			return fmt.Errorf("%s missing and mounting fusectl failed: %v", abort, merr)
		}
		defer unix.Unmount(ctl, 0)
	}
	return writeSysfs(abort, "1")
}

// slowRoot is the root directory. Handlers touch memory only.
type slowRoot struct {
	fs.Inode
	s *SlowFS
}

var (
	_ fs.NodeCreater  = (*slowRoot)(nil)
	_ fs.NodeUnlinker = (*slowRoot)(nil)
)

// Create makes open(O_CREAT) work, e.g. WithBacking on a path in the SlowFS.
func (r *slowRoot) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f := newSlowFile(r.s, 0)
	ch := r.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG})
	f.fillAttr(&out.Attr)
	return ch, nil, fuse.FOPEN_DIRECT_IO, 0
}

// Unlink lets the bridge drop the child; the data goes with the node.
func (r *slowRoot) Unlink(ctx context.Context, name string) syscall.Errno { return 0 }

// slowFile is a sparse in-memory file.
type slowFile struct {
	fs.Inode
	s *SlowFS

	mu     sync.Mutex
	size   int64
	chunks map[int64][]byte // index -> slowChunk bytes
	mtime  time.Time
}

var (
	_ fs.NodeOpener    = (*slowFile)(nil)
	_ fs.NodeGetattrer = (*slowFile)(nil)
	_ fs.NodeSetattrer = (*slowFile)(nil)
	_ fs.NodeReader    = (*slowFile)(nil)
	_ fs.NodeWriter    = (*slowFile)(nil)
	_ fs.NodeWritever  = (*slowFile)(nil)
	_ fs.NodeFsyncer   = (*slowFile)(nil)
	_ fs.NodeFlusher   = (*slowFile)(nil)
	_ fs.NodeAllocater = (*slowFile)(nil)
)

func newSlowFile(s *SlowFS, size int64) *slowFile {
	return &slowFile{s: s, size: size, chunks: map[int64][]byte{}, mtime: time.Now()}
}

// Open: FOPEN_DIRECT_IO bypasses the page cache of the FUSE file, so that
// writes reach Write synchronously.
func (f *slowFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
}

func (f *slowFile) fillAttr(a *fuse.Attr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.Mode = syscall.S_IFREG | 0o644
	a.Size = uint64(f.size)
	a.Blksize = 4096
	a.Blocks = uint64(len(f.chunks)) * (slowChunk / 512)
	a.Nlink = 1
	a.SetTimes(nil, &f.mtime, &f.mtime)
}

func (f *slowFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fillAttr(&out.Attr)
	return 0
}

func (f *slowFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		f.mu.Lock()
		f.truncateLocked(int64(sz))
		f.mtime = time.Now()
		f.mu.Unlock()
	}
	f.fillAttr(&out.Attr)
	return 0
}

func (f *slowFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= f.size {
		return fuse.ReadResultData(nil), 0
	}
	n := min(int64(len(dest)), f.size-off)
	dest = dest[:n]
	for done := int64(0); done < n; {
		pos := off + done
		idx, in := pos/slowChunk, pos%slowChunk
		step := min(n-done, slowChunk-in)
		if c := f.chunks[idx]; c != nil {
			copy(dest[done:done+step], c[in:in+step])
		} else {
			clear(dest[done : done+step])
		}
		done += step
	}
	return fuse.ReadResultData(dest), 0
}

func (f *slowFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return f.Writev(ctx, fh, [][]byte{data}, off)
}

func (f *slowFile) Writev(ctx context.Context, fh fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if errno := f.s.enter(ctx, &f.s.writes); errno != 0 {
		return 0, errno
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for _, b := range data {
		f.writeLocked(b, off+int64(total))
		total += len(b)
	}
	f.mtime = time.Now()
	return uint32(total), 0
}

func (f *slowFile) writeLocked(b []byte, off int64) {
	for done := 0; done < len(b); {
		pos := off + int64(done)
		idx, in := pos/slowChunk, pos%slowChunk
		step := min(len(b)-done, int(slowChunk-in))
		c := f.chunks[idx]
		if c == nil {
			c = make([]byte, slowChunk)
			f.chunks[idx] = c
		}
		copy(c[in:], b[done:done+step])
		done += step
	}
	if end := off + int64(len(b)); end > f.size {
		f.size = end
	}
}

// zeroLocked zeroes [off, end) within the current size, freeing whole chunks.
func (f *slowFile) zeroLocked(off, end int64) {
	end = min(end, f.size)
	for pos := off; pos < end; {
		idx, in := pos/slowChunk, pos%slowChunk
		step := min(end-pos, slowChunk-in)
		if c := f.chunks[idx]; c != nil {
			if step == slowChunk {
				delete(f.chunks, idx)
			} else {
				clear(c[in : in+step])
			}
		}
		pos += step
	}
}

func (f *slowFile) truncateLocked(sz int64) {
	if sz < f.size {
		f.zeroLocked(sz, f.size)
		for idx := range f.chunks {
			if idx*slowChunk >= sz {
				delete(f.chunks, idx)
			}
		}
	}
	f.size = sz
}

const (
	fallocKeepSize  = 0x01 // FALLOC_FL_KEEP_SIZE
	fallocPunchHole = 0x02 // FALLOC_FL_PUNCH_HOLE
	fallocZeroRange = 0x10 // FALLOC_FL_ZERO_RANGE
)

// Allocate serves fallocate(2): what a loop device sends for discard (punch
// hole) and write-zeroes (zero range or punch hole). It is held like a write.
func (f *slowFile) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if mode&^(fallocKeepSize|fallocPunchHole|fallocZeroRange) != 0 ||
		(mode&fallocPunchHole != 0 && mode&fallocKeepSize == 0) ||
		(mode&fallocPunchHole != 0 && mode&fallocZeroRange != 0) {
		return syscall.EOPNOTSUPP
	}
	if int64(off) < 0 || int64(size) <= 0 || int64(off+size) < 0 {
		return syscall.EINVAL
	}
	if errno := f.s.enter(ctx, &f.s.fallocs); errno != 0 {
		return errno
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end := int64(off + size)
	if mode&(fallocPunchHole|fallocZeroRange) != 0 {
		f.zeroLocked(int64(off), end)
	}
	if mode&fallocKeepSize == 0 && end > f.size {
		f.size = end
	}
	f.mtime = time.Now()
	return 0
}

// Fsync has nothing to persist; it is never held.
func (f *slowFile) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno { return 0 }

// Flush (close(2)) is never held.
func (f *slowFile) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }
