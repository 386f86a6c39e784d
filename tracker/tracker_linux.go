//go:build linux

package tracker

import (
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
)

// flagCompletionEvents is LB_F_COMPLETION_EVENTS of tracker.bpf.c.
const flagCompletionEvents = 1

// protection is one protected path: a whole disk or a partition of it.
type protection struct {
	path       string
	dev        uint32 // whole disk, kernel dev_t encoding
	start, end int64  // protected bytes on the whole disk (end open for a whole disk)
	diskSize   int64
	// restored marks a placeholder learnt from pinned maps: it keeps the
	// kernel's range until the new process protects its paths again, and
	// names events only while no real protection of the disk exists.
	restored bool
}

// Linux is the eBPF tracker.
type Linux struct {
	opts Options

	maps  lbbpf.TrackerMaps
	cut   *ebpf.Program
	progs []*ebpf.Program // when adopted from pins: the hooks behind the pinned links
	// missBase is the programs' skipped runs when they were adopted.
	missBase uint64
	links    []link.Link

	reader *ringbuf.Reader
	// readerMu guards the ring buffer's mapping: Close unmaps it under
	// the write lock, AvailableBytes reads it under the read lock.
	readerMu     sync.RWMutex
	readerClosed bool
	dirty        []uint64 // the mmapped bitmap
	mmap         []byte

	// The per-CPU queue rings (see tracker.bpf.c), mmapped.
	qring     []byte   // records of qrecSize bytes, cpu<<qshift + slot
	qpos      []uint64 // head at [cpu*qposStride], tail at [cpu*qposStride+8]
	qshift    uint     // log2 of the slots of one CPU's ring
	ncpu      int
	qringMmap []byte
	qposMmap  []byte

	// The clock queue events are stamped with (see Now), mmapped; nil
	// once closed.
	clockMu   sync.RWMutex
	clock     *uint64
	clockMmap []byte

	// The mmapped direct-mapped copy of protected_disks (disk_fast in
	// tracker.bpf.c), kept by syncFastLocked.
	diskFast     []lbbpf.TrackerLbDiskFast
	diskFastMmap []byte

	bootID [16]byte

	// inFlightOf replaces devInFlight's read of sysfs in tests.
	inFlightOf func(dev uint32) (int64, error)

	mu     sync.Mutex
	byPath map[string]*protection
	byDev  map[uint32][]*protection
	// protGen changes with every change of byPath/byDev, so the reader
	// may cache what names a device's events.
	protGen atomic.Uint64
	gaps    map[string]error
	prior   *stateFile // what the state file said at open, nil if none
	adopted bool       // pins existed: no gap
	// takeover says why pins of another program version were replaced.
	takeover string

	cutMu   sync.Mutex
	waiters map[uint64]chan struct{}

	events    chan []Event
	batch     []Event // being filled by readLoop
	done      chan struct{}
	abort     chan struct{} // closed when Close stops waiting for the consumer
	abandoned atomic.Uint64 // events read from the kernel but never delivered
	startOnce sync.Once
	wg        sync.WaitGroup
	closed    atomic.Bool

	regions sync.Map // dev -> *atomic.Uint64 bitmap regions collected

	// gapBase holds, per path, the lost and missed-run counts when its
	// last gap was acknowledged: Gap reports only what came after.
	gapBase map[string][2]uint64
}

var _ Tracker = (*Linux)(nil)

// setDefaults fills in the defaults and checks the sizes.
func (o *Options) setDefaults() error {
	if o.QueueRingSize == 0 {
		o.QueueRingSize = DefaultQueueRingSize
		if o.RingBufferSize != 0 {
			o.QueueRingSize = o.RingBufferSize / 4
		}
	}
	if o.QueueRingSize < 0 {
		return fmt.Errorf("queue ring size %d: must not be negative", o.QueueRingSize)
	}
	if o.RingBufferSize == 0 {
		o.RingBufferSize = SmallRingBufferSize
		if o.CompletionEvents {
			o.RingBufferSize = DefaultRingBufferSize
		}
	}
	page := os.Getpagesize()
	if o.RingBufferSize < page || o.RingBufferSize&(o.RingBufferSize-1) != 0 {
		return fmt.Errorf("ring buffer size %d: must be a power of two of at least %d bytes", o.RingBufferSize, page)
	}
	if o.BitmapGranularity == 0 {
		o.BitmapGranularity = DefaultGranularity
	}
	if err := ValidateGranularity(o.BitmapGranularity); err != nil {
		return err
	}
	if o.BitmapWords == 0 {
		o.BitmapWords = 1 << 18
	}
	if o.BitmapWords < 2 || o.BitmapWords*8%page != 0 {
		return fmt.Errorf("bitmap words %d: must fill whole pages (a multiple of %d)", o.BitmapWords, page/8)
	}
	if o.EventBuffer == 0 {
		o.EventBuffer = 4096
	}
	if o.InflightSlots == 0 {
		o.InflightSlots = 1 << 15
	}
	if o.InflightSlots < 2 || o.InflightSlots > 1<<20 || o.InflightSlots&(o.InflightSlots-1) != 0 {
		return fmt.Errorf("in-flight slots %d: must be a power of two from 2 to %d", o.InflightSlots, 1<<20)
	}
	if o.DiskSlots == 0 {
		o.DiskSlots = 256
	}
	if o.DiskSlots < 1 || o.DiskSlots > 1024 || o.DiskSlots&(o.DiskSlots-1) != 0 {
		return fmt.Errorf("disk slots %d: must be a power of two from 1 to 1024", o.DiskSlots)
	}
	return nil
}

// Open loads and attaches the tracker, or adopts the one pinned in
// opts.PinDir.
func Open(opts Options) (*Linux, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	t := &Linux{
		opts:    opts,
		byPath:  map[string]*protection{},
		byDev:   map[uint32][]*protection{},
		gaps:    map[string]error{},
		gapBase: map[string][2]uint64{},
		waiters: map[uint64]chan struct{}{},
		events:  make(chan []Event, max(1, opts.EventBuffer/MaxBatch)),
		done:    make(chan struct{}),
		abort:   make(chan struct{}),
	}
	id, err := readBootID()
	if err != nil {
		return nil, err
	}
	t.bootID = id
	if opts.StateFile != "" {
		sf, err := readStateFile(opts.StateFile)
		if err != nil {
			return nil, err
		}
		t.prior = sf
	}

	spec, err := lbbpf.LoadTracker()
	if err != nil {
		return nil, fmt.Errorf("load tracker spec: %w", err)
	}
	var specs lbbpf.TrackerSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("load tracker spec: %w", err)
	}
	specs.Events.MaxEntries = uint32(opts.RingBufferSize)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	t.ncpu = ncpu
	// The queue rings share QueueRingSize among the CPUs: the reader
	// empties them every few ms, and every page of them counts in the
	// agent's memory (the mapping is populated when it is made).
	t.qshift = uint(max(4, bits.Len(uint(opts.QueueRingSize/qrecSize/ncpu))-1))
	specs.Qring.MaxEntries = uint32(ncpu << t.qshift)
	specs.Qpos.MaxEntries = uint32(ncpu * qposStride)
	if err := specs.QringShift.Set(uint32(t.qshift)); err != nil {
		return nil, fmt.Errorf("size the queue rings: %w", err)
	}
	specs.Dirty.MaxEntries = uint32(opts.BitmapWords)
	specs.InflightFast.MaxEntries = uint32(opts.InflightSlots)
	if err := specs.FastBits.Set(uint32(bits.TrailingZeros(uint(opts.InflightSlots)))); err != nil {
		return nil, fmt.Errorf("size the in-flight table: %w", err)
	}
	specs.DiskFast.MaxEntries = uint32(opts.DiskSlots)
	if err := specs.DiskBits.Set(uint32(bits.TrailingZeros(uint(opts.DiskSlots)))); err != nil {
		return nil, fmt.Errorf("size the disk table: %w", err)
	}
	// x86 keeps stores in order: the program publishes with plain stores.
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		if err := specs.Tso.Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set the store order: %w", err)
		}
	}

	if opts.PinDir != "" {
		ok, err := t.adopt(spec, &specs)
		if err != nil {
			return nil, err
		}
		t.adopted = ok
	}
	if !t.adopted {
		if err := t.load(spec); err != nil {
			t.closeHandles()
			return nil, err
		}
	}
	var flags uint64
	if opts.CompletionEvents {
		flags |= flagCompletionEvents
	}
	if err := t.runCut(&lbbpf.TrackerLbCutArgs{Op: cutFlags, Gen: flags}); err != nil {
		t.closeHandles()
		return nil, fmt.Errorf("set tracker flags: %w", err)
	}
	if err := t.mapBitmap(); err != nil {
		t.closeHandles()
		return nil, err
	}
	if err := t.mapQueues(); err != nil {
		t.closeHandles()
		return nil, err
	}
	if err := t.restoreProtections(); err != nil {
		t.closeHandles()
		return nil, err
	}
	// A process stopped between its two writes leaves the copy behind.
	if err := t.syncFastLocked(); err != nil {
		t.closeHandles()
		return nil, err
	}
	rd, err := ringbuf.NewReader(t.maps.Events)
	if err != nil {
		t.closeHandles()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	t.reader = rd
	return t, nil
}

// start begins delivering events. It waits for the first call of Events or
// Cut, so that a process that adopted pins protects its disks again (and
// names them) before the events buffered meanwhile are read.
func (t *Linux) start() {
	t.startOnce.Do(func() {
		t.wg.Add(1)
		go t.readLoop()
	})
}

// Events delivers the tracker's reports in batches, in order. Consume it
// concurrently with Cut.
func (t *Linux) Events() <-chan []Event {
	t.start()
	return t.events
}

// CloseTimeout bounds how long Close waits for the consumer to take the
// events already read from the kernel.
const CloseTimeout = 5 * time.Second

// Close stops reading from the kernel. Events already read are still
// delivered: consume Events until it is closed, or they are lost to the
// next process (Close gives up after CloseTimeout and says how many).
// Pinned tracking goes on in the kernel; unpinned tracking ends.
func (t *Linux) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.done)
	if t.reader != nil {
		t.readerMu.Lock()
		t.readerClosed = true
		t.reader.Close()
		t.readerMu.Unlock()
	}
	finished := make(chan struct{})
	go func() { t.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(CloseTimeout):
		close(t.abort)
		<-finished
	}
	t.startOnce.Do(func() { close(t.events) }) // never started
	t.closeHandles()
	if n := t.abandoned.Load(); n > 0 && t.opts.PinDir != "" {
		return fmt.Errorf("close tracker: %d events read from the kernel were not consumed; the next process must resync", n)
	}
	return nil
}

// Detach ends tracking in the kernel: links are detached and pins removed.
func (t *Linux) Detach() error {
	dir := t.opts.PinDir
	err := t.Close()
	if dir != "" {
		if rerr := removePins(dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (t *Linux) closeHandles() {
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
	if t.mmap != nil {
		unix.Munmap(t.mmap)
		t.mmap, t.dirty = nil, nil
	}
	if t.qringMmap != nil {
		unix.Munmap(t.qringMmap)
		t.qringMmap, t.qring = nil, nil
	}
	if t.qposMmap != nil {
		unix.Munmap(t.qposMmap)
		t.qposMmap, t.qpos = nil, nil
	}
	if t.diskFastMmap != nil {
		unix.Munmap(t.diskFastMmap)
		t.diskFastMmap, t.diskFast = nil, nil
	}
	t.clockMu.Lock()
	if t.clockMmap != nil {
		unix.Munmap(t.clockMmap)
		t.clockMmap, t.clock = nil, nil
	}
	t.clockMu.Unlock()
	for _, p := range t.progs {
		p.Close()
	}
	if t.cut != nil {
		t.cut.Close()
	}
	t.maps.Close()
}

// PinDir returns the pin directory, empty if unpinned.
func (t *Linux) PinDir() string { return t.opts.PinDir }

// Adopted reports whether Open took over a pinned tracker.
func (t *Linux) Adopted() bool { return t.adopted }
