//go:build linux

package tracker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// pollInterval bounds how late an event is delivered when the kernel did
// not wake the reader.
const pollInterval = 5 * time.Millisecond

// ProgramVersion is stored in the pinned state; a process only adopts pins
// of the same version.
const ProgramVersion = 6

const (
	maxDisks = 64
	genSlots = 1024

	evQueued    = 1
	evCompleted = 2
	evCut       = 4

	cutBump  = 1
	cutMark  = 2
	cutFlags = 3

	flagCompletionEvents = 1
)

// Mode is how a disk's changes travel from the kernel.
type Mode uint32

const (
	// ModeMetadata sends every extent through the queue rings (default).
	ModeMetadata Mode = 0
	// ModeBitmap only marks the dirty bitmap; extents come out at cuts, one
	// region per dirty granule run. The fallback under pressure.
	ModeBitmap Mode = 1
)

func (m Mode) String() string {
	if m == ModeBitmap {
		return "bitmap"
	}
	return "metadata"
}

// Options configure a Linux tracker.
type Options struct {
	// PinDir is a directory on a bpffs mount. When set, programs, links and
	// maps are pinned there, and a new process opening the same directory
	// continues tracking with no gap. When empty, tracking ends on Close.
	PinDir string
	// RingBufferSize in bytes (a power of two, a multiple of the page size):
	// the size of the ring buffer of completion events and cut markers;
	// the per-CPU rings of queue events share a quarter of it (each CPU
	// gets a power of two of 48-byte records, at least 16). Default 8 MiB.
	RingBufferSize int
	// BitmapGranularity in bytes (power of two, >= 4 KiB). Default 64 KiB.
	BitmapGranularity int64
	// BitmapWords is the size of the dirty bitmap shared by all disks, in
	// 64-bit words. Each disk needs 2*ceil(size/granularity/64). Default
	// 1<<18 words (2 MiB), enough for 1 TiB of disks at 64 KiB.
	BitmapWords int
	// StateFile, when set, records the boot id and the protected disks so
	// that a gap across a reboot or a lost pin directory is detected.
	StateFile string
	// EventBuffer is how many events may wait for the consumer, in
	// batches of up to MaxBatch. Default 4096.
	EventBuffer int
	// CompletionEvents sends an EventCompleted for every request when it
	// completes. Off, only queue events, cut markers and dirty regions
	// come, and Completed tells when a generation's requests are done;
	// each completion event costs a ring-buffer record per write. A
	// process that adopts pins sets the flag its own way.
	CompletionEvents bool
	// InflightSlots is the size of the direct-mapped table in which the
	// kernel program follows each write until it completes (a power of
	// two, 2 to 1<<20; default 1<<15). A write whose slot is taken is
	// followed in a hash map instead, which costs more per write:
	// Stats.InFlightSpilled counts them. A process that adopts pins uses
	// the pinned table's size.
	InflightSlots int
	// DiskSlots is the size of the direct-mapped table in which the
	// kernel program finds a protected disk by its device number (a power
	// of two, 1 to 1024; default 256). A disk whose slot another disk
	// holds is found in a hash map instead, which costs more per write.
	// A process that adopts pins uses the pinned table's size.
	DiskSlots int
}

func (o *Options) setDefaults() error {
	if o.RingBufferSize == 0 {
		o.RingBufferSize = 8 << 20
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
	progs []*ebpf.Program // nil when adopted from pins
	links []link.Link

	reader *ringbuf.Reader
	dirty  []uint64 // the mmapped bitmap
	mmap   []byte

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

type stateFile struct {
	BootID string   `json:"boot_id"`
	Disks  []string `json:"disks"`
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
	spec.Maps["events"].MaxEntries = uint32(opts.RingBufferSize)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	t.ncpu = ncpu
	// The queue rings share a quarter of RingBufferSize among the CPUs:
	// the reader empties them every few ms (16 Ki records a CPU by
	// default, millions of writes a second), and every page of them that
	// the reader touches counts in the agent's memory.
	t.qshift = uint(max(4, bits.Len(uint(opts.RingBufferSize/4/qrecSize/ncpu))-1))
	spec.Maps["qring"].MaxEntries = uint32(ncpu << t.qshift)
	spec.Maps["qpos"].MaxEntries = uint32(ncpu * qposStride)
	if err := spec.Variables["qring_shift"].Set(uint32(t.qshift)); err != nil {
		return nil, fmt.Errorf("size the queue rings: %w", err)
	}
	spec.Maps["dirty"].MaxEntries = uint32(opts.BitmapWords)
	spec.Maps["inflight_fast"].MaxEntries = uint32(opts.InflightSlots)
	if err := spec.Variables["fast_bits"].Set(uint32(bits.TrailingZeros(uint(opts.InflightSlots)))); err != nil {
		return nil, fmt.Errorf("size the in-flight table: %w", err)
	}
	spec.Maps["disk_fast"].MaxEntries = uint32(opts.DiskSlots)
	if err := spec.Variables["disk_bits"].Set(uint32(bits.TrailingZeros(uint(opts.DiskSlots)))); err != nil {
		return nil, fmt.Errorf("size the disk table: %w", err)
	}
	// x86 keeps stores in order: the program publishes with plain stores.
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		if err := spec.Variables["tso"].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set the store order: %w", err)
		}
	}

	if opts.PinDir != "" {
		ok, err := t.adopt(spec)
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

// pinnedMaps are every map the attached programs use: an adopting process
// must read the same ones (cpu_local above all: a cut that waited on a
// fresh copy of the busy counters would not wait at all).
var pinnedMaps = []string{"protected_disks", "disk_stats", "state", "gen_inflight", "inflight_fast", "inflight", "qring", "qpos", "clock", "disk_fast", "events", "dirty", "cpu_local"}

var linkPins = []string{"link_rq_complete", "link_bio_complete", "link_block_split", "link_bio_queue"}

// adopt takes over a pinned tracker. It returns false (and cleans the
// directory) when there is nothing complete to adopt.
func (t *Linux) adopt(spec *ebpf.CollectionSpec) (bool, error) {
	dir := t.opts.PinDir
	if _, err := os.Stat(filepath.Join(dir, "state")); errors.Is(err, os.ErrNotExist) {
		// Nothing pinned, or a pin set that never completed: start anew.
		if err := removePins(dir); err != nil {
			return false, err
		}
		return false, nil
	}
	maps := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range maps {
			m.Close()
		}
	}()
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned map %s: %w", name, err)}
		}
		maps[name] = m
	}
	// The version is at byte 16 of the state in every version so far; a
	// pinned tracker of another version has other maps and programs, so
	// it is taken down and replaced (an upgrade): tracking has a gap
	// there, and the disks it protected are resynced (a checksum compare).
	raw := make([]byte, maps["state"].ValueSize())
	if err := maps["state"].Lookup(uint32(0), &raw); err != nil || len(raw) < 24 {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned state: %v", err)}
	}
	if v := binary.LittleEndian.Uint64(raw[16:24]); v != ProgramVersion {
		for _, m := range maps {
			m.Close()
		}
		clear(maps)
		if err := removePins(dir); err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("replace the pinned tracker of version %d: %w", v, err)}
		}
		t.takeover = fmt.Sprintf("tracker program replaced (pinned version %d, this agent's version %d)", v, ProgramVersion)
		return false, nil
	}
	var st lbbpf.TrackerLbState
	if err := maps["state"].Lookup(uint32(0), &st); err != nil {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("read pinned state: %w", err)}
	}
	if st.BootIdHi != binary.BigEndian.Uint64(t.bootID[:8]) || st.BootIdLo != binary.BigEndian.Uint64(t.bootID[8:]) {
		return false, &PinError{Dir: dir, Err: errors.New("pinned tracker belongs to another boot")}
	}
	for _, name := range linkPins {
		l, err := link.LoadPinnedLink(filepath.Join(dir, name), nil)
		if err != nil {
			return false, &PinError{Dir: dir, Err: fmt.Errorf("load pinned link %s: %w", name, err)}
		}
		t.links = append(t.links, l)
	}
	// The ring buffer and bitmap sizes are those of the pinned maps.
	spec.Maps["events"].MaxEntries = maps["events"].MaxEntries()
	spec.Maps["dirty"].MaxEntries = maps["dirty"].MaxEntries()
	spec.Maps["inflight_fast"].MaxEntries = maps["inflight_fast"].MaxEntries()
	spec.Maps["qring"].MaxEntries = maps["qring"].MaxEntries()
	spec.Maps["qpos"].MaxEntries = maps["qpos"].MaxEntries()
	if cpus := int(maps["qpos"].MaxEntries()) / qposStride; cpus != t.ncpu {
		return false, &PinError{Dir: dir, Err: fmt.Errorf("pinned tracker was sized for %d CPUs, this machine has %d", cpus, t.ncpu)}
	}
	t.qshift = uint(bits.TrailingZeros(uint(maps["qring"].MaxEntries()) / uint(t.ncpu)))
	t.opts.InflightSlots = int(maps["inflight_fast"].MaxEntries())
	spec.Maps["disk_fast"].MaxEntries = maps["disk_fast"].MaxEntries()
	t.opts.DiskSlots = int(maps["disk_fast"].MaxEntries())
	t.opts.RingBufferSize = int(maps["events"].MaxEntries())
	t.opts.BitmapWords = int(maps["dirty"].MaxEntries())

	// Load only the cut program, bound to the pinned maps.
	var objs struct {
		Cut *ebpf.Program `ebpf:"cut"`
		lbbpf.TrackerMaps
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: maps}); err != nil {
		return false, fmt.Errorf("load cut program: %w", err)
	}
	t.cut = objs.Cut
	t.maps = objs.TrackerMaps
	return true, nil
}

func (t *Linux) load(spec *ebpf.CollectionSpec) error {
	var objs lbbpf.TrackerObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load tracker programs (verifier): %+v", ve)
		}
		return fmt.Errorf("load tracker programs: %w", err)
	}
	t.maps = objs.TrackerMaps
	t.cut = objs.Cut
	t.progs = []*ebpf.Program{objs.OnRqComplete, objs.OnBioComplete, objs.OnBlockSplit, objs.OnBioQueue, objs.Cut}

	st := lbbpf.TrackerLbState{
		Version:   ProgramVersion,
		BootIdHi:  binary.BigEndian.Uint64(t.bootID[:8]),
		BootIdLo:  binary.BigEndian.Uint64(t.bootID[8:]),
		CreatedNs: uint64(time.Now().UnixNano()),
	}
	if err := t.maps.State.Update(uint32(0), &st, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("init tracker state: %w", err)
	}
	// Completion hooks first, so no queued bio misses its completion.
	attach := []struct {
		prog *ebpf.Program
		pin  string
	}{
		{objs.OnRqComplete, "link_rq_complete"},
		{objs.OnBioComplete, "link_bio_complete"},
		{objs.OnBlockSplit, "link_block_split"},
		{objs.OnBioQueue, "link_bio_queue"},
	}
	for _, a := range attach {
		l, err := link.AttachTracing(link.TracingOptions{Program: a.prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", a.prog, err)
		}
		t.links = append(t.links, l)
	}
	if t.opts.PinDir == "" {
		return nil
	}
	if err := os.MkdirAll(t.opts.PinDir, 0o700); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: err}
	}
	for i, a := range attach {
		if err := t.links[i].Pin(filepath.Join(t.opts.PinDir, a.pin)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin %s: %w", a.pin, err)}
		}
	}
	mapsByName := map[string]*ebpf.Map{
		"protected_disks": t.maps.ProtectedDisks, "disk_stats": t.maps.DiskStats,
		"gen_inflight": t.maps.GenInflight, "inflight": t.maps.Inflight,
		"inflight_fast": t.maps.InflightFast, "qring": t.maps.Qring, "qpos": t.maps.Qpos,
		"clock": t.maps.Clock, "disk_fast": t.maps.DiskFast,
		"events": t.maps.Events, "dirty": t.maps.Dirty, "state": t.maps.State,
		"cpu_local": t.maps.CpuLocal,
	}
	// "state" last: its pin marks a complete set.
	for _, name := range pinnedMaps {
		if name == "state" {
			continue
		}
		if err := mapsByName[name].Pin(filepath.Join(t.opts.PinDir, name)); err != nil {
			return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map %s: %w", name, err)}
		}
	}
	if err := t.maps.State.Pin(filepath.Join(t.opts.PinDir, "state")); err != nil {
		return &PinError{Dir: t.opts.PinDir, Err: fmt.Errorf("pin map state: %w", err)}
	}
	return nil
}

// A queue ring record is a struct lb_event; qposStride words per CPU keep
// a CPU's head and tail on cache lines of their own.
const (
	qrecSize   = 48
	qposStride = 16
)

// mapQueues maps what user space shares with the program through memory:
// the queue rings and their positions, the clock and the disk table.
func (t *Linux) mapQueues() error {
	n := int(t.maps.Qring.MaxEntries()) * qrecSize
	b, err := unix.Mmap(t.maps.Qring.FD(), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue rings: %w", err)
	}
	t.qringMmap, t.qring = b, b
	words := int(t.maps.Qpos.MaxEntries())
	p, err := unix.Mmap(t.maps.Qpos.FD(), 0, words*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue positions: %w", err)
	}
	t.qposMmap = p
	t.qpos = unsafe.Slice((*uint64)(unsafe.Pointer(&p[0])), words)
	c, err := unix.Mmap(t.maps.Clock.FD(), 0, int(max(8, t.maps.Clock.ValueSize())), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap queue clock: %w", err)
	}
	t.clockMmap, t.clock = c, (*uint64)(unsafe.Pointer(&c[0]))
	t.Now()
	n = int(t.maps.DiskFast.MaxEntries()) * int(unsafe.Sizeof(lbbpf.TrackerLbDiskFast{}))
	f, err := unix.Mmap(t.maps.DiskFast.FD(), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap disk table: %w", err)
	}
	t.diskFastMmap = f
	t.diskFast = unsafe.Slice((*lbbpf.TrackerLbDiskFast)(unsafe.Pointer(&f[0])), t.maps.DiskFast.MaxEntries())
	return nil
}

// diskFastIndex is the slot of a dev_t in disk_fast (as in tracker.bpf.c).
func diskFastIndex(dev uint32, slots int) int {
	return int(uint64(dev*0x9E3779B1) >> (32 - bits.TrailingZeros(uint(slots))))
}

// syncFastLocked makes disk_fast mirror protected_disks, which has just
// changed: a disk gone leaves its slot (dev cleared first), a disk new to
// a free slot is written there before its dev, a disk already in its slot
// gets its changed fields one atomic store each, and a disk whose slot
// another disk holds is looked up in protected_disks (its slot's spill set).
// A program that matched a disk just removed may read the fields of the
// next disk written to that slot: at worst it marks a range of that disk
// dirty that did not change (more is copied, nothing is missed).
func (t *Linux) syncFastLocked() error {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return err
	}
	for i := range t.diskFast {
		f := &t.diskFast[i]
		if d := atomic.LoadUint32(&f.Dev); d != 0 {
			if _, ok := cfgs[d]; !ok || diskFastIndex(d, len(t.diskFast)) != i {
				atomic.StoreUint32(&f.Dev, 0)
			}
		}
	}
	devs := make([]uint32, 0, len(cfgs))
	for d := range cfgs {
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i] < devs[j] })
	spill := make([]bool, len(t.diskFast))
	for _, d := range devs {
		c := cfgs[d]
		i := diskFastIndex(d, len(t.diskFast))
		f := &t.diskFast[i]
		switch atomic.LoadUint32(&f.Dev) {
		case d:
			atomic.StoreUint64(&f.Cfg.Start, c.Start)
			atomic.StoreUint64(&f.Cfg.End, c.End)
			atomic.StoreUint32(&f.Cfg.Mode, c.Mode)
			if f.Cfg.Slot != c.Slot || f.Cfg.BmBase != c.BmBase || f.Cfg.BmWords != c.BmWords || f.Cfg.BmShift != c.BmShift {
				// Only a new disk gets a new stats slot or bitmap.
				atomic.StoreUint32(&f.Dev, 0)
				f.Cfg = c
				atomic.StoreUint32(&f.Dev, d)
			}
		case 0:
			f.Cfg = c
			atomic.StoreUint32(&f.Dev, d)
		default:
			spill[i] = true
		}
	}
	for i, sp := range spill {
		var v uint32
		if sp {
			v = 1
		}
		if atomic.LoadUint32(&t.diskFast[i].Spill) != v {
			atomic.StoreUint32(&t.diskFast[i].Spill, v)
		}
	}
	return nil
}

// Now returns the monotonic time (CLOCK_MONOTONIC, ns since boot) after
// handing it to the kernel program, which stamps queue events with the
// last time handed to it rather than read the clock for every write: a
// request queued after Now returns T carries a Time >= T, and every
// request carries a Time no later than when it was queued. The reader
// hands the time over on every poll (so queue times are at most a few
// milliseconds early while it keeps up); call Now when an event must be
// dated against something that just happened, such as the end of a read.
func (t *Linux) Now() time.Duration {
	now := uint64(MonotonicNow())
	t.clockMu.RLock()
	defer t.clockMu.RUnlock()
	if t.clock == nil {
		return time.Duration(now)
	}
	for {
		old := atomic.LoadUint64(t.clock)
		if old >= now || atomic.CompareAndSwapUint64(t.clock, old, now) {
			return time.Duration(now)
		}
	}
}

// MonotonicNow reads the clock of Event.Time (CLOCK_MONOTONIC, since
// boot) without handing it to the kernel program: to measure how old a
// change is, not to date a read (see Now).
func MonotonicNow() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

func (t *Linux) mapBitmap() error {
	n := t.opts.BitmapWords * 8
	b, err := unix.Mmap(t.maps.Dirty.FD(), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap dirty bitmap: %w", err)
	}
	t.mmap = b
	t.dirty = unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), t.opts.BitmapWords)
	return nil
}

// restoreProtections learns the disks protected by an adopted tracker, so
// their events have a name before Protect is called again.
func (t *Linux) restoreProtections() error {
	var (
		dev uint32
		cfg lbbpf.TrackerLbDiskCfg
	)
	it := t.maps.ProtectedDisks.Iterate()
	for it.Next(&dev, &cfg) {
		end := int64(math.MaxInt64)
		if cfg.End != math.MaxUint64 {
			end = int64(cfg.End) * 512
		}
		p := &protection{dev: dev, start: int64(cfg.Start) * 512, end: end, restored: true}
		p.path = placeholderPath(dev, p.start, p.end)
		if size, err := wholeDiskSize(dev); err == nil {
			p.diskSize = size
		}
		t.byPath[p.path] = p
		t.byDev[dev] = append(t.byDev[dev], p)
		t.protGen.Add(1)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read protected disks: %w", err)
	}
	return nil
}

// Protect starts tracking the block device at path.
func (t *Linux) Protect(path string) error {
	info, err := inspectDevice(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.protGen.Add(1)
	if old, ok := t.byPath[info.path]; ok && old.dev == info.dev && old.start == info.start && old.end == info.end {
		// Protected twice, or adopted from pins under the same name.
		old.restored = false
		return t.recordStateLocked()
	}
	for _, p := range t.byDev[info.dev] {
		if !p.restored && p.start < info.end && info.start < p.end {
			return &DeviceError{Path: path, Err: fmt.Errorf("overlaps %s, which is already protected", p.path),
				Remedy: "protect either the whole disk or its partitions, not both"}
		}
	}
	if err := t.putDiskLocked(info.dev, append(t.byDev[info.dev], info)); err != nil {
		return &DeviceError{Path: path, Err: err}
	}
	t.byPath[info.path] = info
	t.byDev[info.dev] = append(t.byDev[info.dev], info)
	if t.prior != nil && !t.adopted {
		for _, d := range t.prior.Disks {
			if d != info.path {
				continue
			}
			reason := "tracker state lost while the machine was running"
			if t.prior.BootID != formatBootID(t.bootID) {
				reason = "machine rebooted"
			} else if t.takeover != "" {
				reason = t.takeover
			}
			t.gaps[info.path] = &ResyncRequiredError{Disk: info.path, Reason: reason}
		}
	}
	return t.recordStateLocked()
}

// putDiskLocked writes the kernel entry of a whole disk covering prots.
func (t *Linux) putDiskLocked(dev uint32, prots []*protection) error {
	var cfg lbbpf.TrackerLbDiskCfg
	exists := t.maps.ProtectedDisks.Lookup(dev, &cfg) == nil
	start, end := prots[0].start, prots[0].end
	for _, p := range prots[1:] {
		start, end = min(start, p.start), max(end, p.end)
	}
	cfg.Start, cfg.End = uint64(start/512), uint64((end+511)/512)
	if end == math.MaxInt64 {
		// A whole disk: writes past its size at protect time (it grew)
		// are tracked too.
		cfg.End = math.MaxUint64
	}
	if !exists {
		slot, err := t.freeSlot()
		if err != nil {
			return err
		}
		words := BitmapWords(prots[0].diskSize, t.opts.BitmapGranularity)
		base, err := t.allocBitmap(2 * words)
		if err != nil {
			return err
		}
		// Clear what an earlier owner of these words may have left.
		for i := base; i < base+2*words; i++ {
			atomic.StoreUint64(&t.dirty[i], 0)
		}
		zero := make([]lbbpf.TrackerLbDiskStats, ebpf.MustPossibleCPU())
		if err := t.maps.DiskStats.Update(slot, zero, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("reset stats: %w", err)
		}
		cfg.Slot = slot
		cfg.Mode = uint32(ModeMetadata)
		cfg.BmBase = uint64(base)
		cfg.BmWords = uint64(words)
		cfg.BmShift = uint32(log2(t.opts.BitmapGranularity / 512))
	}
	if err := t.maps.ProtectedDisks.Update(dev, &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("add to protected disks: %w", err)
	}
	return t.syncFastLocked()
}

func (t *Linux) diskConfigs() (map[uint32]lbbpf.TrackerLbDiskCfg, error) {
	out := map[uint32]lbbpf.TrackerLbDiskCfg{}
	var (
		dev uint32
		cfg lbbpf.TrackerLbDiskCfg
	)
	it := t.maps.ProtectedDisks.Iterate()
	for it.Next(&dev, &cfg) {
		out[dev] = cfg
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read protected disks: %w", err)
	}
	return out, nil
}

func (t *Linux) freeSlot() (uint32, error) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return 0, err
	}
	used := map[uint32]bool{}
	for _, c := range cfgs {
		used[c.Slot] = true
	}
	for s := uint32(0); s < maxDisks; s++ {
		if !used[s] {
			return s, nil
		}
	}
	return 0, fmt.Errorf("already %d disks protected", maxDisks)
}

// allocBitmap finds n free words in the shared bitmap (first fit).
func (t *Linux) allocBitmap(n int64) (int64, error) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return 0, err
	}
	type span struct{ a, b int64 }
	var used []span
	for _, c := range cfgs {
		used = append(used, span{int64(c.BmBase), int64(c.BmBase + 2*c.BmWords)})
	}
	sort.Slice(used, func(i, j int) bool { return used[i].a < used[j].a })
	at := int64(0)
	for _, u := range used {
		if u.a-at >= n {
			break
		}
		at = max(at, u.b)
	}
	if at+n > int64(len(t.dirty)) {
		return 0, fmt.Errorf("dirty bitmap full: the disk needs %d words, %d of %d are free; "+
			"raise the bitmap size or the granularity", n, int64(len(t.dirty))-at, len(t.dirty))
	}
	return at, nil
}

// Unprotect stops tracking the device at path.
func (t *Linux) Unprotect(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.protGen.Add(1)
	p, ok := t.byPath[abs]
	if !ok {
		return fmt.Errorf("unprotect %s: not protected", path)
	}
	var rest []*protection
	real := false
	for _, q := range t.byDev[p.dev] {
		if q != p {
			rest = append(rest, q)
			real = real || !q.restored
		}
	}
	if !real {
		// Only placeholders of an earlier process are left: they go too.
		for _, q := range rest {
			delete(t.byPath, q.path)
		}
		rest = nil
	}
	if len(rest) == 0 {
		if err := t.maps.ProtectedDisks.Delete(p.dev); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		if err := t.syncFastLocked(); err != nil {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		delete(t.byDev, p.dev)
	} else {
		if err := t.putDiskLocked(p.dev, rest); err != nil {
			return fmt.Errorf("unprotect %s: %w", path, err)
		}
		t.byDev[p.dev] = rest
	}
	delete(t.byPath, abs)
	delete(t.gaps, abs)
	return t.recordStateLocked()
}

// SetMode switches a protected disk between metadata and bitmap mode.
func (t *Linux) SetMode(path string, m Mode) error {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byPath[abs]
	if !ok {
		return fmt.Errorf("set mode of %s: not protected", path)
	}
	var cfg lbbpf.TrackerLbDiskCfg
	if err := t.maps.ProtectedDisks.Lookup(p.dev, &cfg); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	cfg.Mode = uint32(m)
	if err := t.maps.ProtectedDisks.Update(p.dev, &cfg, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if err := t.syncFastLocked(); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	return nil
}

// MaxBatch is the most events one batch on Events holds.
const MaxBatch = 256

// Events delivers the tracker's reports in batches, in order. Consume it
// concurrently with Cut.
func (t *Linux) Events() <-chan []Event {
	t.start()
	return t.events
}

// Gap reports a tracking gap of a protected device.
func (t *Linux) Gap(path string) error {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	g := t.gaps[abs]
	p := t.byPath[abs]
	base := t.gapBase[abs]
	t.mu.Unlock()
	if g != nil {
		return g
	}
	if p == nil {
		return nil
	}
	st, err := t.diskStats(p.dev)
	if err != nil {
		return err
	}
	if st.Lost > base[0] {
		return &ResyncRequiredError{Disk: abs, Reason: fmt.Sprintf("%d changes could not be recorded", st.Lost-base[0])}
	}
	if missed := t.missedRuns(); missed > base[1] {
		return &ResyncRequiredError{Disk: abs, Reason: fmt.Sprintf("the kernel skipped %d tracker runs", missed-base[1])}
	}
	return nil
}

// AckGap records that the gap Gap reported for a device is being repaired
// (its resync has started): from now on Gap reports only new gaps.
// Without it a disk would be resynced again after every resync.
func (t *Linux) AckGap(path string) {
	abs, _ := filepath.Abs(path)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.gaps, abs)
	p := t.byPath[abs]
	if p == nil {
		return
	}
	var base [2]uint64
	if st, err := t.diskStats(p.dev); err == nil {
		base[0] = st.Lost
	}
	base[1] = t.missedRuns()
	t.gapBase[abs] = base
}

// Cut ends the current generation; see Tracker.
func (t *Linux) Cut(ctx context.Context) (uint64, error) {
	if t.closed.Load() {
		return 0, errors.New("cut: tracker closed")
	}
	t.start()
	t.cutMu.Lock()
	defer t.cutMu.Unlock()
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return 0, fmt.Errorf("cut: read tracker state: %w", err)
	}
	gen := st.Gen
	if st.MarkedNext < gen {
		// An earlier cut (maybe of a process that died) bumped the
		// generation but did not put its marker in: finish it first, or
		// the bitmap half of that generation's parity would be drained
		// only one cut later, under a later generation.
		if err := t.quiesce(ctx); err != nil {
			return 0, err
		}
		if err := t.mark(ctx, gen-1); err != nil {
			return 0, err
		}
	}
	var perCPU []uint64
	if err := t.maps.GenInflight.Lookup(uint32((gen+1)%genSlots), &perCPU); err != nil {
		return 0, fmt.Errorf("cut: read in-flight count: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	if n != 0 {
		return 0, fmt.Errorf("cut: %d requests of generation %d are still in flight after %d cuts; wait for them", n, gen+1-genSlots, genSlots)
	}
	args := lbbpf.TrackerLbCutArgs{Op: cutBump}
	if err := t.runCut(&args); err != nil {
		return 0, err
	}
	next := args.Gen
	if err := t.quiesce(ctx); err != nil {
		return 0, err
	}
	ch := make(chan struct{})
	t.mu.Lock()
	t.waiters[next-1] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiters, next-1)
		t.mu.Unlock()
	}()
	if err := t.mark(ctx, next-1); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return next, nil
	case <-t.done:
		return 0, errors.New("cut: tracker closed")
	case <-ctx.Done():
		return 0, fmt.Errorf("cut: wait for events to drain: %w", ctx.Err())
	}
}

var errRingFull = errors.New("ring buffer full")

// mark puts the CUT marker of gen into the ring buffer, waiting for room.
func (t *Linux) mark(ctx context.Context, gen uint64) error {
	args := lbbpf.TrackerLbCutArgs{Op: cutMark, Gen: gen}
	for {
		err := t.runCut(&args)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRingFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cut: ring buffer full: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// quiesce returns once no run of the queue program that may have read the
// generation before the bump is still running: every CPU whose busy
// counter was odd (inside the window) when read after the bump has moved
// on. The bump is a fully ordered atomic, so a run that read the old
// generation had made its counter odd before this read (bpf/tracker.bpf.c).
// A run takes about a microsecond; this replaces an RCU grace period
// (membarrier), which took 11–17 ms here.
func (t *Linux) quiesce(ctx context.Context) error {
	var snap, cur []lbbpf.TrackerLbCpuLocal
	if err := t.maps.CpuLocal.Lookup(uint32(0), &snap); err != nil {
		return fmt.Errorf("cut: read busy counters: %w", err)
	}
	var busy []int
	for c, v := range snap {
		if v.Busy&1 == 1 {
			busy = append(busy, c)
		}
	}
	for i := 0; len(busy) > 0; i++ {
		if i < 64 {
			runtime.Gosched()
		} else {
			select {
			case <-ctx.Done():
				return fmt.Errorf("cut: wait for %d CPUs to leave the tracker: %w", len(busy), ctx.Err())
			case <-time.After(50 * time.Microsecond):
			}
		}
		if err := t.maps.CpuLocal.Lookup(uint32(0), &cur); err != nil {
			return fmt.Errorf("cut: read busy counters: %w", err)
		}
		busy = slices.DeleteFunc(busy, func(c int) bool { return cur[c].Busy != snap[c].Busy })
	}
	return nil
}

func (t *Linux) runCut(a *lbbpf.TrackerLbCutArgs) error {
	ret, err := t.cut.Run(&ebpf.RunOptions{Context: a, ContextOut: a})
	if err != nil {
		return fmt.Errorf("run cut program: %w", err)
	}
	switch ret {
	case 0:
		return nil
	case 2:
		return errRingFull
	default:
		return fmt.Errorf("cut program returned %d", ret)
	}
}

// Generation returns the current generation.
func (t *Linux) Generation() (uint64, error) {
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return 0, fmt.Errorf("read tracker state: %w", err)
	}
	return st.Gen, nil
}

// Completed reports whether every request of generations <= gen completed.
func (t *Linux) Completed(gen uint64) (bool, error) {
	cur, err := t.Generation()
	if err != nil {
		return false, err
	}
	if gen > cur {
		return false, fmt.Errorf("generation %d is not cut yet (current %d)", gen, cur)
	}
	counts, err := t.genCounts()
	if err != nil {
		return false, err
	}
	lo := uint64(0)
	if cur >= genSlots {
		lo = cur - genSlots + 1
	}
	for g := lo; g <= gen; g++ {
		if counts[g%genSlots] != 0 {
			return false, nil
		}
	}
	var untracked uint64
	cfgs, err := t.diskConfigs()
	if err != nil {
		return false, err
	}
	for dev := range cfgs {
		st, err := t.diskStats(dev)
		if err != nil {
			return false, err
		}
		untracked += st.untracked
	}
	if untracked > 0 {
		return false, fmt.Errorf("%d requests were issued while the in-flight table was full: %w", untracked, ErrCompletionUnknown)
	}
	return true, nil
}

// genCounts reads the in-flight request count of every generation slot,
// summed over the CPUs (bpf/tracker.bpf.c). For generations already cut,
// every increment happened before the read, so a sum of zero means none
// of their requests is in flight.
func (t *Linux) genCounts() ([]uint64, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	perCPU := make([]uint64, genSlots*ncpu)
	keys := make([]uint32, genSlots)
	for i := range keys {
		keys[i] = uint32(i)
	}
	var cursor ebpf.MapBatchCursor
	n, err := t.maps.GenInflight.BatchLookup(&cursor, keys, perCPU, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read in-flight counts: %w", err)
	}
	if n != genSlots {
		return nil, fmt.Errorf("read in-flight counts: got %d of %d", n, genSlots)
	}
	counts := make([]uint64, genSlots)
	for i := range counts {
		for _, v := range perCPU[i*ncpu : (i+1)*ncpu] {
			counts[i] += v
		}
	}
	return counts, nil
}

// ErrCompletionUnknown: the tracker cannot tell when some requests complete.
var ErrCompletionUnknown = errors.New("completion of some requests is unknown")

type rawStats struct {
	DiskStats
	untracked uint64
}

func (t *Linux) diskStats(dev uint32) (rawStats, error) {
	var cfg lbbpf.TrackerLbDiskCfg
	if err := t.maps.ProtectedDisks.Lookup(dev, &cfg); err != nil {
		return rawStats{}, fmt.Errorf("read disk config: %w", err)
	}
	var per []lbbpf.TrackerLbDiskStats
	if err := t.maps.DiskStats.Lookup(cfg.Slot, &per); err != nil {
		return rawStats{}, fmt.Errorf("read disk stats: %w", err)
	}
	var r rawStats
	for _, s := range per {
		r.Events += s.Events
		r.Bytes += s.Bytes
		r.Drops += s.Drops
		r.Lost += s.Lost
		r.untracked += s.Untracked
	}
	if v, ok := t.regions.Load(dev); ok {
		r.BitmapRegions = v.(*atomic.Uint64).Load()
	}
	r.Mode = Mode(cfg.Mode).String()
	return r, nil
}

func (t *Linux) missedRuns() uint64 {
	var n uint64
	for _, p := range t.progs {
		if s, err := p.Stats(); err == nil {
			n += s.RecursionMisses
		}
	}
	return n
}

// programs lists the attached programs by their links (also when adopted
// from pins) and the cut program.
func (t *Linux) programs() []Program {
	var ps []Program
	for i, l := range t.links {
		info, err := l.Info()
		if err != nil {
			continue
		}
		name := fmt.Sprintf("link%d", i)
		if i < len(linkPins) {
			name = linkPins[i]
		}
		ps = append(ps, Program{Name: name, ID: uint32(info.Program), LinkID: uint32(info.ID)})
	}
	if t.cut != nil {
		if info, err := t.cut.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ps = append(ps, Program{Name: "cut", ID: uint32(id)})
			}
		}
	}
	return ps
}

// Stats returns the tracker's counters.
func (t *Linux) Stats() (Stats, error) {
	var st lbbpf.TrackerLbState
	if err := t.maps.State.Lookup(uint32(0), &st); err != nil {
		return Stats{}, fmt.Errorf("read tracker state: %w", err)
	}
	s := Stats{Generation: st.Gen, InFlightSpilled: st.Spilled, MissedRuns: t.missedRuns(), Programs: t.programs()}
	counts, err := t.genCounts()
	if err != nil {
		return Stats{}, err
	}
	for _, c := range counts {
		s.InFlight += c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for dev, prots := range t.byDev {
		r, err := t.diskStats(dev)
		if err != nil {
			return Stats{}, err
		}
		r.Disk = prots[0].path
		for _, p := range prots[1:] {
			r.Disk += "," + p.path
		}
		s.Disks = append(s.Disks, r.DiskStats)
	}
	sort.Slice(s.Disks, func(i, j int) bool { return s.Disks[i].Disk < s.Disks[j].Disk })
	return s, nil
}

// readLoop turns the kernel's records into Events until Close: queue
// events from the per-CPU queue rings, completion events and cut markers
// from the ring buffer.
func (t *Linux) readLoop() {
	defer t.wg.Done()
	defer close(t.events)
	var rec ringbuf.Record
	r := recordReader{t: t, names: map[uint32][]*protection{}, namesGen: t.protGen.Load()}
	for {
		r.drainQueues()
		if len(t.batch) > 0 && t.reader.AvailableBytes() == 0 {
			t.flush() // nothing more waiting: deliver what was read
		}
		// Neither the queue rings nor (except for cut markers) the ring
		// buffer wake the reader: poll, and keep the queue clock within
		// a poll of the truth.
		t.Now()
		t.reader.SetDeadline(time.Now().Add(pollInterval))
		if err := t.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				t.flush()
				return
			}
			continue
		}
		raw := rec.RawSample
		if len(raw) < qrecSize-4 {
			continue
		}
		switch raw[40] {
		case evCompleted:
			// Its queue event was published before the write was
			// submitted, so before this record: deliver that first.
			r.drainQueues()
			r.event(raw)
		case evCut:
			// The marker is written after the cut's quiescence: every
			// queue record of the generations before is published.
			r.drainQueues()
			gen := binary.LittleEndian.Uint64(raw[24:])
			t.drainBitmap(gen)
			t.send(Event{Kind: EventCut, Extent: Extent{Gen: gen}, Time: time.Duration(binary.LittleEndian.Uint64(raw[16:]))})
			t.flush() // delivered before Cut returns
			t.mu.Lock()
			if ch, ok := t.waiters[gen]; ok {
				close(ch)
				delete(t.waiters, gen)
			}
			t.mu.Unlock()
		}
	}
}

// recordReader is readLoop's: it decodes records and caches what names
// each device's events while protGen is unchanged.
type recordReader struct {
	t        *Linux
	names    map[uint32][]*protection
	namesGen uint64
}

// drainQueues delivers every record published in the per-CPU queue rings
// and gives their slots back to the kernel.
func (r *recordReader) drainQueues() {
	t := r.t
	mask := uint64(1)<<t.qshift - 1
	for cpu := 0; cpu < t.ncpu; cpu++ {
		head := &t.qpos[cpu*qposStride]
		tail := &t.qpos[cpu*qposStride+8]
		h, tl := atomic.LoadUint64(head), atomic.LoadUint64(tail)
		if h == tl {
			continue
		}
		base := cpu << t.qshift
		for ; tl != h; tl++ {
			at := (base + int(tl&mask)) * qrecSize
			r.event(t.qring[at : at+qrecSize])
		}
		atomic.StoreUint64(tail, h)
	}
}

// event delivers a queue or completion record as events of the protected
// paths it touches.
func (r *recordReader) event(raw []byte) {
	t := r.t
	id := binary.LittleEndian.Uint64(raw[0:])
	sector := binary.LittleEndian.Uint64(raw[8:])
	ts := binary.LittleEndian.Uint64(raw[16:])
	gen := binary.LittleEndian.Uint64(raw[24:])
	bytes := binary.LittleEndian.Uint32(raw[32:])
	dev := binary.LittleEndian.Uint32(raw[36:])
	k := EventQueued
	if raw[40] == evCompleted {
		k = EventCompleted
	}
	op := Op(raw[41])
	off, end := int64(sector)*512, int64(sector)*512+int64(bytes)
	if g := t.protGen.Load(); g != r.namesGen {
		clear(r.names)
		r.namesGen = g
	}
	named, ok := r.names[dev]
	if !ok {
		named = t.named(dev)
		r.names[dev] = named
	}
	for _, p := range named {
		a, b := max(off, p.start), min(end, p.end)
		if a >= b {
			continue
		}
		t.send(Event{Kind: k, ID: id, Time: time.Duration(ts),
			Extent: Extent{Disk: p.path, Offset: a, Length: b - a, Op: op, Gen: gen}})
	}
}

// named returns the protections that name the events of a disk: the real
// ones, or the placeholders if the disk has no real one yet.
func (t *Linux) named(dev uint32) []*protection {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := t.byDev[dev]
	var real []*protection
	for _, p := range all {
		if !p.restored {
			real = append(real, p)
		}
	}
	if len(real) == 0 {
		return all
	}
	return real
}

// send adds an event to the batch being filled; readLoop delivers it.
func (t *Linux) send(e Event) {
	if t.batch == nil {
		t.batch = make([]Event, 0, MaxBatch)
	}
	t.batch = append(t.batch, e)
	if len(t.batch) == MaxBatch {
		t.flush()
	}
}

// flush delivers the batch being filled. A delivered batch belongs to the
// consumer: the next one is a new slice.
func (t *Linux) flush() {
	if len(t.batch) == 0 {
		return
	}
	select {
	case t.events <- t.batch:
	case <-t.abort:
		t.abandoned.Add(uint64(len(t.batch)))
	}
	t.batch = nil
}

// drainBitmap collects the bitmap half of gen's parity: after the cut of
// gen has settled it holds only changes of generations <= gen.
func (t *Linux) drainBitmap(gen uint64) {
	cfgs, err := t.diskConfigs()
	if err != nil {
		return
	}
	for dev, cfg := range cfgs {
		base := int64(cfg.BmBase) + int64(gen&1)*int64(cfg.BmWords)
		words := make([]uint64, cfg.BmWords)
		any := false
		for i := range words {
			if atomic.LoadUint64(&t.dirty[base+int64(i)]) != 0 {
				words[i] = atomic.SwapUint64(&t.dirty[base+int64(i)], 0)
				any = true
			}
		}
		if !any {
			continue
		}
		size, err := wholeDiskSize(dev)
		if err != nil {
			size = int64(cfg.BmWords) * 64 << (cfg.BmShift + 9)
		}
		gran := int64(512) << cfg.BmShift
		exts := BitmapExtents("", words, 0, gran, size, gen)
		v, _ := t.regions.LoadOrStore(dev, new(atomic.Uint64))
		v.(*atomic.Uint64).Add(uint64(len(exts)))
		prots := t.named(dev)
		for _, e := range exts {
			for _, p := range prots {
				a, b := max(e.Offset, p.start), min(e.End(), p.end)
				if a >= b {
					continue
				}
				t.send(Event{Kind: EventDirty, Extent: Extent{Disk: p.path, Offset: a, Length: b - a, Op: OpDirty, Gen: gen}})
			}
		}
	}
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
		t.reader.Close()
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

// PinError is a problem with the pin directory.
type PinError struct {
	Dir string
	Err error
}

func (e *PinError) Error() string { return fmt.Sprintf("tracker pins in %s: %v", e.Dir, e.Err) }
func (e *PinError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *PinError) Hint() string {
	return "remove " + e.Dir + " to start tracking anew; the disks will then be resynced"
}

func removePins(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &PinError{Dir: dir, Err: err}
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return &PinError{Dir: dir, Err: err}
		}
	}
	return nil
}

func (t *Linux) recordStateLocked() error {
	if t.opts.StateFile == "" {
		return nil
	}
	sf := stateFile{BootID: formatBootID(t.bootID)}
	for p := range t.byPath {
		sf.Disks = append(sf.Disks, p)
	}
	sort.Strings(sf.Disks)
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.opts.StateFile), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(t.opts.StateFile, b, 0o600)
}

func readStateFile(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tracker state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("read tracker state %s: %w (remove it; the disks will be resynced)", path, err)
	}
	return &sf, nil
}

func readBootID() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, fmt.Errorf("read boot id: %w", err)
	}
	hex := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(hex) != 32 {
		return id, fmt.Errorf("read boot id: unexpected %q", b)
	}
	for i := 0; i < 16; i++ {
		var v byte
		if _, err := fmt.Sscanf(hex[2*i:2*i+2], "%02x", &v); err != nil {
			return id, fmt.Errorf("read boot id: %w", err)
		}
		id[i] = v
	}
	return id, nil
}

// BootID returns the kernel's boot id as /proc/sys/kernel/random/boot_id
// spells it: the id a change of which means a reboot, hence a tracking gap.
func BootID() (string, error) {
	id, err := readBootID()
	if err != nil {
		return "", err
	}
	return formatBootID(id), nil
}

func formatBootID(id [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

func log2(v int64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}
