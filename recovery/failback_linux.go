//go:build linux

package recovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// Failback is a failback session: StartFailback opens the disks and starts
// tracking, Run compares and sends deltas until Complete, then makes the
// final cut and verifies.
type Failback struct {
	cfg   FailbackConfig
	log   *slog.Logger
	disks []*fbDisk
	tr    *tracker.Linux // nil when no source is a block device

	complete     chan struct{}
	completeOnce sync.Once
	consumerDone chan struct{}

	mu      sync.Mutex
	st      FailbackStatus
	pending []tracker.Extent
	cutSeen uint64
	cutWake chan struct{} // closed and replaced at each EventCut
}

type fbDisk struct {
	FailbackDisk
	src, dst *device
	tracked  bool
	srcDev   string // whole disk "major:minor" of a block source
	trPath   string // the path the tracker names the source by
	c        FailbackCounters
	verified int64
}

// StartFailback checks and opens the disks of a failback and starts
// tracking the block sources, so that nothing written from now on is
// missed. It refuses a target that is not a block device, is mounted or
// held, is tracked by a running tracker, is smaller than its source, or is
// the source itself. Close releases everything.
func StartFailback(cfg FailbackConfig) (_ *Failback, err error) {
	if len(cfg.Disks) == 0 {
		return nil, &FailbackError{Msg: "no disk to fail back", Remedy: "give --to DEV"}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	f := &Failback{cfg: cfg, log: cfg.Log, complete: make(chan struct{}), cutWake: make(chan struct{})}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	targets := map[uint64]string{}
	for _, d := range cfg.Disks {
		fd := &fbDisk{FailbackDisk: d}
		f.disks = append(f.disks, fd)
		if fd.src, fd.tracked, err = openSource(d); err != nil {
			return nil, err
		}
		if fd.dst, err = openTarget(d); err != nil {
			return nil, err
		}
		if prev, ok := targets[fd.dst.rdev]; ok {
			return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " is also the target of disk " + prev, Remedy: "give each disk its own --to DISK=DEV"}
		}
		targets[fd.dst.rdev] = d.Name
		if fd.src.rdev != 0 && fd.src.rdev == fd.dst.rdev {
			return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " is the recovered disk itself", Remedy: "give --to the on-premises disk to write back to"}
		}
		if fd.dst.size < fd.src.size {
			return nil, &FailbackError{Disk: d.Name, Msg: fmt.Sprintf("target %s holds %d bytes, the recovered disk %d", d.Target, fd.dst.size, fd.src.size),
				Remedy: "give --to a disk at least as large as the recovered one"}
		}
		if fd.tracked {
			fd.srcDev, err = fsutil.WholeDisk(unix.Major(fd.src.rdev), unix.Minor(fd.src.rdev))
			if err != nil {
				return nil, &FailbackError{Disk: d.Name, Msg: "find the disk of " + d.Source, Err: err}
			}
		}
	}
	for _, d := range f.disks {
		if !d.tracked {
			continue
		}
		if f.tr == nil {
			if f.tr, err = tracker.Open(tracker.Options{}); err != nil {
				return nil, &FailbackError{Msg: "start the eBPF tracker", Remedy: "the master target needs root, BTF and bpffs to track the recovered disk; or stop the recovered machine and detach its disk so its image file is read instead", Err: err}
			}
		}
		if err := f.tr.Protect(d.Source); err != nil {
			return nil, &FailbackError{Disk: d.Name, Msg: "track " + d.Source, Remedy: "the recovered disk must be a whole block device", Err: err}
		}
		abs, _ := filepath.Abs(d.Source)
		d.trPath = abs
	}
	f.st = FailbackStatus{Phase: PhaseComparing, Started: time.Now().UTC()}
	if f.tr != nil {
		f.consumerDone = make(chan struct{})
		go f.consume()
	}
	return f, nil
}

// openSource opens the recovered disk read-only, with O_DIRECT.
func openSource(d FailbackDisk) (*device, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.Source, &st); err != nil {
		return nil, false, &FailbackError{Disk: d.Name, Msg: "recovered disk " + d.Source + " not found", Remedy: "give --from DISK=PATH: the block device (or image) the recovered machine uses", Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		dev, err := openDevice(d.Source, os.O_RDONLY)
		if err != nil {
			return nil, false, &FailbackError{Disk: d.Name, Msg: "open the recovered disk " + d.Source, Err: err}
		}
		return dev, true, nil
	case unix.S_IFREG:
		dev, err := openDevice(d.Source, os.O_RDONLY)
		if err != nil {
			return nil, false, &FailbackError{Disk: d.Name, Msg: "open the recovered image " + d.Source, Err: err}
		}
		return dev, false, nil
	}
	return nil, false, &FailbackError{Disk: d.Name, Msg: d.Source + " is neither a block device nor an image file", Remedy: "give --from DISK=PATH: the block device (or image) the recovered machine uses"}
}

// openTarget opens the on-premises disk for writing, exclusively: the
// kernel refuses O_EXCL on a block device that is mounted or held.
func openTarget(d FailbackDisk) (*device, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.Target, &st); err != nil {
		return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " not found", Remedy: "give --to the block device of the on-premises disk (lsblk lists them)", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " is not a block device", Remedy: "failback writes a whole disk: give --to a block device such as /dev/sdb, not a file"}
	}
	tracked, err := tracker.TrackedAnywhere(d.Target)
	if err != nil {
		return nil, &FailbackError{Disk: d.Name, Msg: "check whether a tracker protects " + d.Target, Err: err}
	}
	if tracked {
		return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " is protected by a running Lifeboat tracker",
			Remedy: "stop the agent that protects it and remove its tracker ('lifeboat-agent uninstall', or remove its bpffs pin directory): its writes would be replicated as new changes"}
	}
	dev, err := openDevice(d.Target, os.O_RDWR|unix.O_EXCL)
	if errors.Is(err, unix.EBUSY) {
		return nil, &FailbackError{Disk: d.Name, Msg: "target " + d.Target + " is in use (mounted, or held by another program)",
			Remedy: "unmount every filesystem of " + d.Target + " and stop what holds it (findmnt, lsblk), then try again", Err: err}
	}
	if err != nil {
		return nil, &FailbackError{Disk: d.Name, Msg: "open target " + d.Target, Err: err}
	}
	return dev, nil
}

// Complete asks Run to make the final cut, send the last delta, verify and
// finish.
func (f *Failback) Complete() { f.completeOnce.Do(func() { close(f.complete) }) }

// Status returns a snapshot of the session.
func (f *Failback) Status() FailbackStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Frozen = append([]string(nil), f.st.Frozen...)
	st.Disks = make([]FailbackDiskStatus, len(f.disks))
	for i, d := range f.disks {
		st.Disks[i] = FailbackDiskStatus{Name: d.Name, Source: d.Source, Target: d.Target, Tracked: d.tracked,
			Size: d.src.size, TargetSize: d.dst.size, FailbackCounters: d.c, Verified: d.verified}
	}
	return st
}

func (f *Failback) setPhase(p string) {
	f.mu.Lock()
	f.st.Phase = p
	f.mu.Unlock()
	f.log.Info("failback phase", "phase", p)
}

// Run compares every disk with its target and writes the blocks that
// differ, then sends deltas every Interval until Complete; then it freezes
// the filesystems mounted from the recovered disks, sends the last delta,
// verifies every target against its source by checksums (fixing and
// counting any difference), syncs the targets and thaws. It returns nil
// once the targets equal the recovered disks.
func (f *Failback) Run(ctx context.Context) (err error) {
	defer func() {
		f.mu.Lock()
		f.st.Finished = time.Now().UTC()
		switch {
		case err == nil:
			f.st.Phase = PhaseDone
		case ctx.Err() != nil:
			f.st.Phase, f.st.Err = PhaseCanceled, err
		default:
			f.st.Phase, f.st.Err = PhaseFailed, err
		}
		f.mu.Unlock()
	}()
	buf, err := alignedBuffer(FailbackCoarse)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)

	for _, d := range f.disks {
		if err := f.compareDisk(ctx, d, buf, false); err != nil {
			return err
		}
	}
	f.setPhase(PhaseDelta)
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.complete:
			break loop
		case <-timer.C:
		}
		if err := f.deltaPass(ctx, buf); err != nil {
			return err
		}
		timer.Reset(f.cfg.Interval)
	}

	f.setPhase(PhaseFinal)
	disks := map[string]bool{}
	for _, d := range f.disks {
		if d.tracked {
			disks[d.srcDev] = true
		}
	}
	mnts, err := fsutil.MountsOn(disks)
	if err != nil {
		return fmt.Errorf("find the filesystems of the recovered disks: %w", err)
	}
	fz, err := fsutil.Freeze(mnts)
	if err != nil {
		return &FailbackError{Msg: "final cut: freeze the recovered machine's filesystems", Remedy: "stop the recovered machine (unmount its filesystems) and complete again", Err: err}
	}
	frozenAt := time.Now()
	thawed := false
	thaw := func() error {
		if thawed {
			return nil
		}
		thawed = true
		terr := fz.Thaw()
		f.mu.Lock()
		f.st.Freeze = time.Since(frozenAt)
		f.mu.Unlock()
		return terr
	}
	defer thaw()
	f.mu.Lock()
	f.st.Frozen = fz.Mounts()
	f.mu.Unlock()
	if err := f.deltaPass(ctx, buf); err != nil {
		return err
	}
	f.setPhase(PhaseVerifying)
	for _, d := range f.disks {
		if err := f.compareDisk(ctx, d, buf, true); err != nil {
			return err
		}
		if err := d.dst.Sync(); err != nil {
			return fmt.Errorf("sync target %s: %w", d.Target, err)
		}
	}
	if err := thaw(); err != nil {
		return err
	}
	for _, d := range f.disks {
		if d.verified > 0 && d.c.VerifyFixed > 0 {
			f.log.Warn("verification found blocks the deltas missed, and wrote them", "disk", d.Name, "bytes", d.c.VerifyFixed, "tracked", d.tracked)
		}
	}
	return nil
}

// compareDisk compares a whole disk with its target by checksums, in
// slices so that Status shows progress. verify counts into Verified and
// VerifyFixed instead of Compared and Differ.
func (f *Failback) compareDisk(ctx context.Context, d *fbDisk, buf []byte, verify bool) error {
	size := d.src.size
	for off := int64(0); off < size; off += hashBatch {
		var c FailbackCounters
		differ, err := compareRange(ctx, d.src, d.dst, off, min(hashBatch, size-off), buf, &c)
		f.mu.Lock()
		d.c.Sent += c.Sent
		if verify {
			d.verified += c.Compared
			d.c.VerifyFixed += differ
		} else {
			d.c.Compared += c.Compared
			d.c.Differ += c.Differ
		}
		f.mu.Unlock()
		if err != nil {
			return &FailbackError{Disk: d.Name, Msg: "compare", Remedy: "see the server's log; fix the device and start the failback again: the compare sends only what still differs", Err: err}
		}
	}
	return nil
}

// consume collects the tracker's events: the extents to send and the
// generations whose events have all been delivered.
func (f *Failback) consume() {
	defer close(f.consumerDone)
	for batch := range f.tr.Events() {
		f.mu.Lock()
		for _, e := range batch {
			switch e.Kind {
			case tracker.EventQueued, tracker.EventDirty:
				f.pending = append(f.pending, e.Extent)
			case tracker.EventCut:
				f.cutSeen = max(f.cutSeen, e.Extent.Gen)
				close(f.cutWake)
				f.cutWake = make(chan struct{})
			}
		}
		f.mu.Unlock()
	}
}

// deltaPass ends a tracker generation, waits until every write of the
// generations before has been delivered and has completed, and copies the
// extents they changed. Changes of later generations wait for the next
// pass: reading them before their writes complete could send stale data
// that nothing would ever send again.
func (f *Failback) deltaPass(ctx context.Context, buf []byte) error {
	if f.tr == nil {
		return nil
	}
	gen, err := f.tr.Cut(ctx)
	if err != nil {
		return fmt.Errorf("tracker cut: %w", err)
	}
	for {
		f.mu.Lock()
		seen, wake := f.cutSeen, f.cutWake
		f.mu.Unlock()
		if seen >= gen-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.consumerDone:
			return errors.New("tracker stopped delivering events")
		case <-wake:
		}
	}
	if err := tracker.WaitCompleted(ctx, f.tr, gen-1); err != nil {
		return err
	}
	for _, d := range f.disks {
		if err := f.tr.Gap(d.trPath); err != nil {
			// The tracker lost changes: the final verification would
			// find them, but say it now.
			f.log.Warn("tracker lost changes of the recovered disk; the final verification will compare every block", "disk", d.Name, "err", err)
		}
	}
	sets := map[string]*tracker.Set{}
	f.mu.Lock()
	keep := f.pending[:0]
	for _, e := range f.pending {
		if e.Gen >= gen {
			keep = append(keep, e)
			continue
		}
		s := sets[e.Disk]
		if s == nil {
			s = &tracker.Set{}
			sets[e.Disk] = s
		}
		s.Add(e.Offset, e.Length)
	}
	f.pending = keep
	f.st.Passes++
	f.mu.Unlock()
	for _, d := range f.disks {
		s := sets[d.trPath]
		if s == nil {
			continue
		}
		for _, r := range s.Ranges() {
			off, n := alignFine(r.Off, r.Len, d.src.size)
			var c FailbackCounters
			err := copyRange(ctx, d.src, d.dst, off, n, buf, &c)
			f.mu.Lock()
			d.c.Sent += c.Sent
			d.c.Delta += c.Delta
			f.mu.Unlock()
			if err != nil {
				// What was not copied is sent by a later pass or found
				// by the verification.
				f.mu.Lock()
				f.pending = append(f.pending, tracker.Extent{Disk: d.trPath, Offset: off, Length: n, Op: tracker.OpDirty})
				f.mu.Unlock()
				return &FailbackError{Disk: d.Name, Msg: "delta", Remedy: "see the server's log; start the failback again: the compare sends only what still differs", Err: err}
			}
		}
	}
	return nil
}

// Close stops tracking and closes the disks. It does not thaw: Run always
// thaws before it returns.
func (f *Failback) Close() error {
	var errs []error
	if f.tr != nil {
		errs = append(errs, f.tr.Close())
		if f.consumerDone != nil {
			<-f.consumerDone
		}
	}
	for _, d := range f.disks {
		if d.src != nil {
			errs = append(errs, d.src.close())
		}
		if d.dst != nil {
			errs = append(errs, d.dst.close())
		}
	}
	return errors.Join(errs...)
}

// LoopOf returns the loop device whose backing file is path, "" if none.
// The recovered machine of a failover on this host uses its image through
// one.
func LoopOf(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	want, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "loop", "backing_file"))
		if err != nil {
			continue
		}
		bf := strings.TrimSpace(string(b))
		if st, err := os.Stat(bf); err == nil && os.SameFile(st, want) {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", nil
}

// device is a disk or image read and written with O_DIRECT, so that what
// is read is what reached the device, never a page cache ahead of it.
type device struct {
	f    *os.File
	path string
	size int64
	rdev uint64 // device number of a block device, 0 for a file
	buf  []byte // aligned, for Hashes
}

func openDevice(path string, flag int) (*device, error) {
	f, err := os.OpenFile(path, flag|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		// A file on a filesystem without O_DIRECT (tmpfs).
		f, err = os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	d := &device{f: f, path: path, size: st.Size}
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("size of %s: %w", path, err)
		}
		d.size, d.rdev = int64(n), st.Rdev
	}
	if d.buf, err = alignedBuffer(FailbackCoarse); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func alignedBuffer(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("allocate an aligned buffer: %w", err)
	}
	return b, nil
}

func (d *device) Size() int64 { return d.size }

func (d *device) ReadAt(p []byte, off int64) (int, error) {
	got := 0
	for got < len(p) {
		k, err := unix.Pread(int(d.f.Fd()), p[got:], off+int64(got))
		if err != nil {
			return got, fmt.Errorf("read %s at %d: %w", d.path, off+int64(got), err)
		}
		if k == 0 {
			return got, fmt.Errorf("read %s at %d: unexpected end", d.path, off+int64(got))
		}
		got += k
	}
	return got, nil
}

func (d *device) WriteAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		k, err := unix.Pwrite(int(d.f.Fd()), p[done:], off+int64(done))
		if err != nil {
			return done, fmt.Errorf("write %s at %d: %w", d.path, off+int64(done), err)
		}
		done += k
	}
	return done, nil
}

func (d *device) Hashes(ctx context.Context, off, n, block int64) ([][32]byte, error) {
	if off < 0 || n < 0 || off+n > d.size || block <= 0 {
		return nil, fmt.Errorf("hashes of %s [%d,+%d): out of range", d.path, off, n)
	}
	out := make([][32]byte, 0, (n+block-1)/block)
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(n, int64(len(d.buf)))
		k = max(k/block*block, min(n, block)) // whole blocks per read
		if k > int64(len(d.buf)) {
			return nil, fmt.Errorf("hashes: block %d larger than %d", block, len(d.buf))
		}
		p := d.buf[:k]
		if _, err := d.ReadAt(p, off); err != nil {
			return nil, err
		}
		for i := int64(0); i < k; i += block {
			out = append(out, sha256.Sum256(p[i:min(i+block, k)]))
		}
		off += k
		n -= k
	}
	return out, nil
}

func (d *device) Sync() error { return d.f.Sync() }

func (d *device) close() error {
	if d.buf != nil {
		unix.Munmap(d.buf)
		d.buf = nil
	}
	return d.f.Close()
}
