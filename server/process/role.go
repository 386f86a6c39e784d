package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Defaults of Options.
const (
	DefaultHashesWait = 30 * time.Second
	DefaultRetryMax   = 30 * time.Second
)

// Machines is what the process role needs of the machine records the
// configuration role keeps.
type Machines interface {
	// Admit checks a request of machine before the role serves it: it
	// must be assigned to this process server and protected, and its
	// certificate the one of its latest registration. It notes the
	// contact.
	Admit(r *http.Request, machine string) error
	// CheckAssigned refuses a machine this process server must not
	// write now: a move began, or it is assigned elsewhere.
	CheckAssigned(machine string) error
	// Disks returns the disks the machine declared.
	Disks(machine string) []api.DiskSpec
	// SetDisks records the disks the machine declared.
	SetDisks(machine string, disks []api.DiskSpec) error
	// Status is what the admin API shows of the machine: the answer to
	// its declaration of disks.
	Status(ctx context.Context, machine string) (api.Machine, error)
}

// Options configures a Role.
type Options struct {
	// CacheDir is the durable cache: CacheDir/<machine>/<disk>/.
	CacheDir string
	// Store is target storage.
	Store store.Store
	// Machines gives the machine records.
	Machines Machines
	// Log; nil means slog.Default(). The role adds its component.
	Log *slog.Logger
	// MaxSegmentBytes limits one segment; 0 means api.MaxSegmentBytes.
	MaxSegmentBytes int64
	// HashesWait bounds how long a hashes request waits for the durable
	// segments to be applied; 0 means DefaultHashesWait.
	HashesWait time.Duration
	// RetryMax caps the backoff of a failing Apply; 0 means
	// DefaultRetryMax.
	RetryMax time.Duration
	// Events hears of what the operator must know (alerts); nil: none.
	Events Events
	// Applied is told how long each segment took to apply to target
	// storage (the server's metrics); nil: none.
	Applied func(machine, disk string, took time.Duration)
}

// Events is told of conditions that raise an alert (server/alerts).
type Events interface {
	// SegmentConflict: a different segment was sent under the accepted
	// sequence number seq of a disk.
	SegmentConflict(machine, disk string, seq uint64)
}

// Role is the process role: the durable cache of received segments and
// one applier per disk.
type Role struct {
	dir        string
	store      store.Store
	machines   Machines
	log        *slog.Logger
	maxSegment int64
	hashesWait time.Duration
	retryMax   time.Duration
	events     Events
	applied    func(machine, disk string, took time.Duration)

	ctx    context.Context // of the appliers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mapRecords counts the records of the segment maps kept for the
	// appliers, against mapBudget (segmap.go).
	mapRecords atomic.Int64

	mu    sync.Mutex
	disks map[diskKey]*diskState

	ref refusals // problems.go
}

// New opens the cache and starts an applier for every disk that has
// segments in it, so that those acknowledged before a restart get
// applied. Close stops them.
func New(o Options) (*Role, error) {
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = api.MaxSegmentBytes
	}
	if o.HashesWait <= 0 {
		o.HashesWait = DefaultHashesWait
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	p := &Role{dir: o.CacheDir, store: o.Store, machines: o.Machines, log: o.Log,
		maxSegment: o.MaxSegmentBytes, hashesWait: o.HashesWait, retryMax: o.RetryMax, events: o.Events, applied: o.Applied,
		disks: make(map[diskKey]*diskState)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.recoverCache(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the appliers: a segment being applied is finished or left
// for the next start.
func (p *Role) Close() {
	p.cancel()
	p.wg.Wait()
}

// Routes adds the replication endpoints of docs/protocol.md to mux. Each
// request names its machine by its client certificate, which
// Machines.Admit checks first.
func (p *Role) Routes(mux *http.ServeMux, log *slog.Logger) {
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request, machine string) error) {
		mux.Handle(pattern, httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
			m, err := processMachine(r)
			if err != nil {
				return err
			}
			if err := p.machines.Admit(r, m); err != nil {
				return err
			}
			return h(w, r, m)
		}))
	}
	route("PUT "+api.PathMachine, p.putMachine)
	route("GET "+api.PathDiskState, p.getDiskState)
	route("PUT "+api.PathSegment, p.putSegmentNoted)
	route("GET "+api.PathHashes, p.getHashes)
	route("GET "+api.PathPoint, p.getPoint)
	route("POST "+api.PathProbe, p.postProbe)
}

// recoverCache loads every disk that has a cache directory.
func (p *Role) recoverCache() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	ms, err := os.ReadDir(p.dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, m := range ms {
		if !m.IsDir() || api.ValidName(m.Name()) != nil {
			continue
		}
		ds, err := os.ReadDir(filepath.Join(p.dir, m.Name()))
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		for _, d := range ds {
			if !d.IsDir() || api.ValidName(d.Name()) != nil {
				continue
			}
			if _, err := p.disk(m.Name(), d.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// disk returns the state of a disk, loading it (and starting its applier)
// on first use. Names must have passed api.ValidName.
func (p *Role) disk(machine, name string) (*diskState, error) {
	k := diskKey{machine, name}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.disks[k]; d != nil {
		return d, nil
	}
	if p.ctx.Err() != nil {
		return nil, httpapi.Errorf(503, "server shutting down", "retry in a moment")
	}
	d := &diskState{
		p:       p,
		machine: machine,
		name:    name,
		dir:     filepath.Join(p.dir, machine, name),
		log:     p.log.With(httpapi.LogComponent, "process", httpapi.LogMachine, machine, httpapi.LogDisk, name),
		alog:    p.log.With(httpapi.LogComponent, "applier", httpapi.LogMachine, machine, httpapi.LogDisk, name),
		cuts:    make(map[string]cutEntry),
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		maps:    make(map[uint64]segMap),
		digests: make(map[uint64][32]byte),
	}
	if err := d.load(p.ctx); err != nil {
		return nil, fmt.Errorf("load disk %s/%s: %w", machine, name, err)
	}
	p.disks[k] = d
	actx, stop := context.WithCancel(p.ctx)
	d.stop = stop
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		d.applier(actx)
	}()
	d.kick()
	return d, nil
}

// DiskState returns the state of a disk in the cache as the API shows it.
func (p *Role) DiskState(machine, disk string) (api.DiskState, error) {
	st := api.DiskState{Disk: disk}
	for _, d := range p.machines.Disks(machine) {
		if d.Name == disk {
			st.Size = d.Size
		}
	}
	d, err := p.disk(machine, disk)
	if err != nil {
		return st, err
	}
	next, applied := d.state()
	st.NextSeq = next
	if applied > 0 {
		st.Applied, st.AppliedSeq = true, applied-1
	}
	return st, nil
}

// loaded returns the loaded disks, of machine only unless it is "".
func (p *Role) loaded(machine string) []*diskState {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ds []*diskState
	for k, d := range p.disks {
		if machine == "" || k.machine == machine {
			ds = append(ds, d)
		}
	}
	return ds
}

// ApplyProblem returns the error of the last failed apply of a disk
// whose applier is retrying, or "". A nil Role has none.
func (p *Role) ApplyProblem(machine, disk string) string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	d := p.disks[diskKey{machine, disk}]
	p.mu.Unlock()
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applyErr
}

// Received returns the disks of machine the cache has received segments
// of. A nil Role has none.
func (p *Role) Received(machine string) []string {
	var names []string
	for _, d := range p.loaded(machine) {
		if next, _ := d.state(); next > 0 {
			names = append(names, d.name)
		}
	}
	return names
}

// DiskNames returns the disks of a machine, sorted: those it declared,
// or else every disk target storage knows or received names.
func DiskNames(ctx context.Context, st store.Store, machine string, declared []api.DiskSpec, received []string) ([]string, error) {
	if len(declared) > 0 {
		names := make([]string, len(declared))
		for i, d := range declared {
			names[i] = d.Name
		}
		slices.Sort(names)
		return names, nil
	}
	set := map[string]bool{}
	infos, err := st.Disks(ctx, machine)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	for _, in := range infos {
		set[in.Name] = true
	}
	for _, n := range received {
		set[n] = true
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (p *Role) machineDisks(ctx context.Context, machine string) ([]string, error) {
	decl := p.machines.Disks(machine)
	if len(decl) > 0 {
		return DiskNames(ctx, p.store, machine, decl, nil)
	}
	return DiskNames(ctx, p.store, machine, nil, p.Received(machine))
}

// DiskCounters are the counters of one disk of the cache (metrics).
type DiskCounters struct {
	Machine, Disk string
	// Next is the first sequence number not durable; Applied the first
	// not applied.
	Next, Applied uint64
	// Failing: the last apply failed.
	Failing bool
	// CacheBytes is the size of the disk's segments in the cache.
	CacheBytes int64
}

// Counters returns the counters of every loaded disk. A nil Role has
// none.
func (p *Role) Counters() []DiskCounters {
	var out []DiskCounters
	for _, d := range p.loaded("") {
		d.mu.Lock()
		c := DiskCounters{Machine: d.machine, Disk: d.name, Next: d.next, Applied: d.applied, Failing: d.applyErr != ""}
		d.mu.Unlock()
		c.CacheBytes = cachedBytes(d.dir)
		out = append(out, c)
	}
	return out
}

// cachedBytes sums the sizes of the segments in a disk's cache directory.
func cachedBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".hrl") || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Drain waits until every segment this role acknowledged for machine is
// applied (the caller has marked the machine as moving, so that no
// upload is accepted any more), then forgets its disks. A nil Role has
// nothing to drain.
func (p *Role) Drain(ctx context.Context, m string) ([]api.DiskState, error) {
	ds := p.loaded(m)
	slices.SortFunc(ds, func(a, b *diskState) int { return strings.Compare(a.name, b.name) })
	out := []api.DiskState{}
	for _, d := range ds {
		// An upload that passed the check before the mark commits
		// under d.commit: once we hold it, none is left.
		d.commit.Lock()
		next, _ := d.state()
		d.mu.Lock()
		discarded := d.discard != nil
		d.mu.Unlock()
		d.commit.Unlock()
		if discarded {
			// The mark that makes the agent resync stays here: another
			// server would answer its next upload as a plain gap.
			return nil, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("disk %s: segments were discarded and the agent's resync has not begun", d.name),
				"wait until the agent sends again (its next upload starts the resync; 'lifeboat machines' shows it), then move")
		}
		if err := d.waitApplied(ctx, next); err != nil {
			_, applied := d.state()
			return nil, &httpapi.Error{Status: http.StatusGatewayTimeout, Msg: fmt.Sprintf("disk %s: %d acknowledged segments not yet applied to target storage", d.name, next-applied),
				Remedy: "the process server cannot apply them (see its log and 'lifeboat machines'): fix that and move again", Err: err}
		}
		st := api.DiskState{Disk: d.name, NextSeq: next}
		if next > 0 {
			st.Applied, st.AppliedSeq = true, next-1
		}
		out = append(out, st)
	}
	p.Release(m)
	return out, nil
}

// Release forgets the disks of a machine and stops their appliers:
// another process server writes it now, so what this one knew is stale.
// Where target storage fences a machine's writes with a lease
// (LeaseReleaser), the lease is given up. A nil Role has nothing to release.
func (p *Role) Release(m string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	var ds []*diskState
	for k, d := range p.disks {
		if k.machine == m {
			ds = append(ds, d)
			delete(p.disks, k)
		}
	}
	p.mu.Unlock()
	for _, d := range ds {
		d.stop()
	}
	if lr, ok := p.store.(LeaseReleaser); ok {
		// An apply under way ends with its canceled context; the lease
		// goes once it has.
		for _, d := range ds {
			d.applyMu.Lock()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lr.ReleaseMachine(ctx, m)
		cancel()
		for _, d := range ds {
			d.applyMu.Unlock()
		}
	}
}

// LeaseReleaser is target storage whose writes of a machine are fenced by
// a lease its process server holds (azblob.Store). Release gives the
// lease up, so that the server the machine moved to applies it at once:
// held, it would be renewed for as long as this server runs.
type LeaseReleaser interface {
	ReleaseMachine(ctx context.Context, machine string)
}
