package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent/group"
	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/tracker"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// Config configures an agent.
type Config struct {
	// Machine is the machine's name (its certificate's name).
	Machine string
	// Disks are the block devices to protect.
	Disks []string
	// StateDir holds the state, the spool and the local API socket. It must
	// not be on a protected disk.
	StateDir string
	// Client talks to the process server.
	Client Server
	// PinDir is the bpffs directory of the tracker's pins.
	PinDir string
	// PointInterval is how often a crash-consistent point is cut
	// (default 60 s, at least 1 s).
	PointInterval time.Duration
	// RoundInterval is how often changes are collected when idle
	// (default 250 ms).
	RoundInterval time.Duration
	// RoundBytes bounds what one round reads (default 64 MiB).
	RoundBytes int64
	// SpoolBytes bounds the local spool, where segments wait for the
	// server as files; when it is full the agent keeps only the dirty set
	// and catches up later. 0 (the default): no spool, segments are built
	// in memory and streamed to the server, and the agent writes no
	// journal bytes on its host (memory.go).
	SpoolBytes int64
	// MemoryBytes bounds the segments held in memory without a spool
	// (default 16 MiB): beyond it the agent tracks changed regions only
	// (metadata mode) and reads them once the server has caught up.
	MemoryBytes int64
	// SegmentBytes and SegmentAge bound a journal segment (16 MiB with a
	// spool, a quarter of MemoryBytes without, 1 to 8 MiB; 1 s).
	SegmentBytes int64
	SegmentAge   time.Duration
	// MaxRounds bounds the rounds a point may take to converge (20).
	MaxRounds int
	// CompletionWait bounds how long a round waits for the writes queued
	// before its cut to complete before it fails (default 30 s); the next
	// round waits again.
	CompletionWait time.Duration
	// StallAlert: segments waiting with no acknowledgement for longer
	// than this make the status unhealthy (default 2 min; negative:
	// never). LagAlert: an RPO lag (the oldest change not yet durable)
	// over this does (default 15 min, the server's --rpo-alert; negative:
	// never). status.go.
	StallAlert, LagAlert time.Duration
	// AppInterval is how often an app-consistent point is cut (default
	// 1 h; negative: only on request).
	AppInterval time.Duration
	// ScriptsDir holds the app-consistency scripts, run with "pre" before
	// the freeze and "post" after the thaw ("" or missing: none).
	ScriptsDir string
	// ScriptTimeout bounds each script run (default 60 s).
	ScriptTimeout time.Duration
	// MaxAppAttempts bounds the freezes an app-consistent point may take
	// (default 5).
	MaxAppAttempts int
	// ExpediteFreeze makes RCU grace periods expedited for the few
	// milliseconds of an app or group point's freeze
	// (/sys/kernel/rcu_expedited): FIFREEZE waits for several grace
	// periods, 10-15 ms each on a busy machine (app.go).
	ExpediteFreeze bool
	// Group configures group points (group.go); a zero Listen
	// turns them off.
	Group GroupConfig
	Log   *slog.Logger
	// ServerAddr and Certificate are shown by Status: the process
	// server's address and the machine's certificate (optional).
	ServerAddr  string
	Certificate *x509.Certificate
	// Redirect points the Client at another process server; it is
	// called when the configuration server names another one for this
	// machine (redirect.go). nil: the agent never switches.
	Redirect func(addr string) error
	// Bandwidth bounds the upload rate of all disks together
	// (--bandwidth-limit, --bandwidth-schedule); nil: no limit. agentctl
	// bandwidth changes it at run time (bandwidth.go).
	Bandwidth *uploader.Limiter

	// platform and freezer replace the operating system's (unit tests);
	// nil: defaultPlatform(), defaultFreezer().
	platform platform
	freezer  freezer
}

func (c *Config) defaults() error {
	if c.Machine == "" || len(c.Disks) == 0 || c.StateDir == "" || c.Client == nil {
		return errors.New("agent: machine, disks, state directory and server are required")
	}
	if c.PointInterval == 0 {
		c.PointInterval = time.Minute
	}
	if c.PointInterval < time.Second {
		return fmt.Errorf("point interval %s: must be at least 1s", c.PointInterval)
	}
	if c.RoundInterval == 0 {
		c.RoundInterval = 250 * time.Millisecond
	}
	if c.RoundBytes == 0 {
		c.RoundBytes = 64 << 20
	}
	if c.SpoolBytes < 0 || c.MemoryBytes < 0 {
		return fmt.Errorf("agent: negative spool (%d) or memory (%d) bound", c.SpoolBytes, c.MemoryBytes)
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = 16 << 20
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 16 << 20
		if c.SpoolBytes == 0 {
			// Several segments in flight within MemoryBytes.
			c.SegmentBytes = min(8<<20, max(1<<20, c.MemoryBytes/4))
		}
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = time.Second
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = 20
	}
	if c.CompletionWait == 0 {
		c.CompletionWait = 30 * time.Second
	}
	if c.StallAlert == 0 {
		c.StallAlert = DefaultStallAlert
	}
	if c.LagAlert == 0 {
		c.LagAlert = DefaultLagAlert
	}
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir(c.Machine)
	}
	if c.AppInterval == 0 {
		c.AppInterval = time.Hour
	}
	if c.ScriptTimeout == 0 {
		c.ScriptTimeout = time.Minute
	}
	if c.MaxAppAttempts == 0 {
		c.MaxAppAttempts = 5
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Bandwidth == nil {
		c.Bandwidth = uploader.NewLimiter(0, nil) // agentctl bandwidth set can still limit
	}
	if c.Group.Listen != "" {
		if c.Group.Server == nil {
			return errors.New("agent: group points need the configuration server")
		}
		c.Group.defaults(c.ScriptTimeout)
	}
	return nil
}

// Server is the process server as the agent uses it; *client.Process
// implements it.
type Server interface {
	uploader.Sender
	SetMachine(ctx context.Context, disks []api.DiskSpec) (api.Machine, error)
	DiskState(ctx context.Context, disk string) (api.DiskState, error)
	Hashes(ctx context.Context, disk string, off, n, block int64) ([][32]byte, error)
	Point(ctx context.Context, id string) (api.PointStatus, error)
}

// hashBlock is the block of resync comparisons.
const hashBlock = 64 << 10

// Agent replicates the disks of one machine.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	tr    Tracker
	sys   platform
	fz    freezer
	disks []*disk
	st    *persisted

	mu     sync.Mutex // guards rounds, points, disk states
	rounds *rounds

	pointReq  chan *pointRequest
	room      chan struct{} // an acknowledgement freed memory (memory.go)
	waiting   []*pointRequest
	lastPoint Point
	pointDue  time.Time
	attempts  int
	lastCut   time.Time
	pointErr  string
	cutErr    string
	spoolFull bool      // metadata mode: the spool or memory backlog is full
	modeSince time.Time // when spoolFull last changed
	readGen   uint64    // generation the reads of this round belong to
	// cutSeen is one more than the generation of the last cut event the
	// consumer has processed: every change of a lower generation has been
	// observed (waitObserved).
	cutSeen uint64

	appWaiting []*pointRequest
	appDue     time.Time
	appTries   int
	app        *appAttempt // an app cut waiting for its round to be validated
	appErr     string
	lastApp    Point
	freezes    lagStats // freeze durations of app points
	started    time.Time
	kernel     string
	bootID     string
	lastRound  time.Time
	consumerWG sync.WaitGroup
	group      *groupState // nil: group points off
	serverAddr string      // the process server now (guarded by mu)
	counts     agentCounts // for metrics.go
	uploading  atomic.Bool // Run's uploaders are running (drainMemory)
	// srvBookmark is the server's bookmark request last taken
	// (serverbookmark.go; guarded by mu).
	srvBookmark string
	// clog is the tracker's kernel change log, nil without one;
	// lastPending and pendingOK are what persistPending last wrote
	// (crashlog.go).
	clog        changeLog
	pendingMu   sync.Mutex // guards the file and the three below
	lastPending string
	pendingOK   bool
	pendingGen  uint64
}

type disk struct {
	name, path string
	dev        *blockDev
	size       int64
	state      DiskState
	w          *hrlfmt.Writer
	up         *uploader.Uploader
	spoolDir   string
	nextSeq    uint64
	total      int64 // bytes to go through in initial sync or resync
	done       int64
	sent, same int64 // resync: bytes sent, bytes found equal
	// reason says why a resync runs; syncStart and syncStartDone measure
	// the rate of an initial sync or resync (from this process's start).
	reason        string
	syncStart     time.Time
	syncStartDone int64
	// lagWait holds, per round that journaled changes, the oldest change's
	// queue time until the segment holding them is acknowledged.
	lagWait []lagMark
	lag     lagStats
	// unsealed counts bytes journaled into the open segment: part of the
	// spool before the uploader knows of them.
	unsealed atomic.Int64
	cp       *copier      // the read pipeline's buffers (copy.go)
	mem      *segmentPool // without a spool: the segments' memory (memory.go)
	// diverged describes the divergence a resync runs for, "" if none
	// (diverge.go).
	diverged string
	// inSegs: regions journaled into segments not acknowledged yet;
	// logArmed: the kernel change log ran before this process protected
	// the disk; recovered: bytes to read again after a crash (crashlog.go).
	inSegs    []segRange
	taking    []tracker.Range
	logArmed  bool
	recovered int64
}

type lagMark struct {
	seq    uint64 // the round's last records are in segment seq
	oldest int64  // CLOCK_MONOTONIC ns
}

type pointRequest struct {
	app  bool
	at   time.Time // the point must be cut at or after this
	resp chan pointResult
}

// appAttempt is an app-consistent cut whose reads are not validated yet.
type appAttempt struct {
	id     string
	gen    uint64 // the cut's generation: the point closes gen-1
	at     time.Time
	freeze time.Duration
	note   appNote
	kind   hrlfmt.CutKind
	// decide, for a group point, is told whether this member's reads
	// are valid and answers whether the group commits the point; done
	// is told how writing the point went (group.go).
	decide func(valid bool) bool
	done   func(p Point, err error)
}

type pointResult struct {
	p   Point
	err error
}

// New prepares an agent: it checks the disks and the state directory, and
// opens (or adopts) the tracker.
func New(cfg Config) (*Agent, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Log.With("component", "agent"), pointReq: make(chan *pointRequest), room: make(chan struct{}, 1), started: time.Now(),
		sys: cfg.platform, fz: cfg.freezer, serverAddr: cfg.ServerAddr}
	if a.sys == nil {
		a.sys = defaultPlatform()
	}
	if a.fz == nil {
		a.fz = defaultFreezer()
	}
	a.kernel, a.bootID = a.sys.kernelRelease(), a.sys.bootID()
	if cfg.Group.Listen != "" {
		a.group = &groupState{cfg: cfg.Group, sessions: make(chan *group.Conn), reqs: make(chan *pointRequest)}
	}
	for _, d := range cfg.Disks {
		if err := a.sys.checkDisk(d); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := a.sys.checkStateDir(cfg.StateDir, cfg.Disks); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	fresh := st == nil
	if fresh {
		st = &persisted{Machine: cfg.Machine, Disks: map[string]*diskPersisted{}}
	}
	if st.Machine != cfg.Machine {
		return nil, &ConfigError{Err: fmt.Errorf("state directory %s belongs to machine %q, not %q", cfg.StateDir, st.Machine, cfg.Machine),
			Remedy: "give each machine its own --state"}
	}
	wasClean := st.Clean
	a.st = st

	tr, err := a.sys.openTracker(cfg.PinDir, filepath.Join(cfg.StateDir, "tracker.json"))
	if err != nil {
		return nil, fmt.Errorf("start tracker: %w", err)
	}
	a.tr = tr
	names := make([]string, 0, len(cfg.Disks))
	for _, path := range cfg.Disks {
		abs, _ := filepath.Abs(path)
		if err := tr.Protect(abs); err != nil {
			a.closeAll()
			return nil, err
		}
		d := &disk{name: filepath.Base(abs), path: abs, spoolDir: filepath.Join(cfg.StateDir, "spool", filepath.Base(abs))}
		names = append(names, d.name)
		a.disks = append(a.disks, d)
	}
	a.armChangeLog()
	pf, pfErr := loadPending(cfg.StateDir)
	a.rounds = newRounds(names)
	for _, d := range a.disks {
		if err := a.openDisk(d, wasClean, pf, pfErr); err != nil {
			a.closeAll()
			return nil, err
		}
	}
	// Before the start is recorded as unclean: a crash from now on finds
	// what this process starts from.
	a.persistPending(0)
	a.st.Clean = false
	if err := a.saveLocked(); err != nil {
		a.closeAll()
		return nil, err
	}
	return a, nil
}

// openDisk decides where a disk starts: initial sync, resync or where it
// stopped.
func (a *Agent) openDisk(d *disk, wasClean bool, pf *pendingFile, pfErr error) error {
	fresh := a.st.Disks[d.name] == nil
	dev, err := a.sys.openDisk(d.path)
	if err != nil {
		return err
	}
	d.dev, d.size = dev, dev.size
	memory := a.cfg.SpoolBytes == 0
	var rec hrlfmt.Recovery
	if memory {
		// Segments a spool left behind (the agent ran with one before)
		// are still sent; nothing new goes there.
		if _, err := os.Stat(d.spoolDir); err != nil {
			d.spoolDir = ""
		}
	} else if err := os.MkdirAll(d.spoolDir, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if d.spoolDir != "" {
		if rec, err = hrlfmt.Recover(d.spoolDir); err != nil {
			return api.WithHint(fmt.Errorf("recover spool of %s: %w", d.name, err), "move "+d.spoolDir+" away; the disk will be resynced")
		}
	}
	p := a.st.Disks[d.name]
	switch {
	case p == nil:
		d.state = StateInitialSync
		a.rounds.MarkPending(d.name, 0, d.size)
		d.total = d.size
		p = &diskPersisted{Path: d.path, Size: d.size, State: StateInitialSync}
		a.st.Disks[d.name] = p
		// A new state directory: continue the server's sequence.
		seq, err := a.serverSeq(d.name)
		if err != nil {
			return err
		}
		p.NextSeq = seq
	default:
		gap := a.tr.Gap(d.path)
		var crash *pendingDisk
		reason := ""
		switch {
		case gap != nil:
			reason = gap.Error()
		case !a.tr.Adopted() && wasClean:
			reason = "the tracker was not running while the agent was stopped"
		case !a.tr.Adopted():
			reason = "the agent did not stop cleanly and the tracker was not running"
		case !wasClean:
			crash, reason = a.recoverCrash(d, pf, pfErr)
			if crash != nil {
				if reason = a.readCrash(d, crash); reason != "" {
					crash = nil
				}
			}
		}
		switch {
		case crash != nil:
		case reason != "":
			a.log.Warn("tracking gap: resyncing", "disk", d.name, "reason", reason)
			a.tr.AckGap(d.path)
			a.counts.resync(d.name)
			d.state = StateResync
			d.reason = reason
			a.rounds.MarkPending(d.name, 0, d.size)
			d.total = d.size
		default:
			a.log.Info("adopted the pinned tracker: no resync", "disk", d.name, "state", string(p.State),
				"backlog_ranges", len(p.Backlog), "pin_dir", a.cfg.PinDir)
			d.state = p.State
			for _, r := range p.Backlog {
				a.rounds.MarkPending(d.name, r[0], r[1])
			}
			d.total, d.done = p.Total, p.Done
		}
		if d.size != p.Size {
			a.log.Warn("disk size changed", "disk", d.name, "was", p.Size, "now", d.size)
			a.rounds.MarkPending(d.name, min(p.Size, d.size), max(0, d.size-p.Size))
		}
		p.Backlog = nil
		p.Size = d.size
	}
	d.nextSeq = max(p.NextSeq, rec.NextSeq)
	if memory && !fresh {
		// Segments kept in memory die with the process: the server's
		// sequence is where this journal goes on.
		seq, err := a.serverSeq(d.name)
		if err != nil {
			return err
		}
		d.nextSeq = max(seq, rec.NextSeq)
	}
	p.State = d.state
	d.syncStart, d.syncStartDone = time.Now(), d.done
	up, err := uploader.New(a.cfg.Client, d.name, d.spoolDir, a.cfg.Log.With("component", "uploader"))
	if err != nil {
		return err
	}
	up.SetLimiter(a.cfg.Bandwidth)
	d.up = up
	return a.newWriter(d)
}

// serverSeq asks the process server for the sequence number of the next
// segment of a disk's journal.
func (a *Agent) serverSeq(disk string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := a.cfg.Client.DiskState(ctx, disk)
	if err != nil {
		return 0, api.WithHint(fmt.Errorf("ask the process server where the journal of %s stands: %w", disk, err),
			"the agent needs its process server at start to continue the journal; check the network and that lifeboat-server runs (the agent is restarted by its service manager)")
	}
	return s.NextSeq, nil
}

// ConfigError is a set-up the agent refuses, with what to do.
type ConfigError struct {
	Err    error
	Remedy string
}

func (e *ConfigError) Error() string { return e.Err.Error() }

// Hint tells the operator what to do.
func (e *ConfigError) Hint() string  { return e.Remedy }
func (e *ConfigError) Unwrap() error { return e.Err }

// Run replicates until ctx ends, then stops in order: the next start
// continues with no resync.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	decl := make([]api.DiskSpec, 0, len(a.disks))
	for _, d := range a.disks {
		decl = append(decl, api.DiskSpec{Name: d.name, Size: d.size})
	}
	go func() {
		for ctx.Err() == nil {
			if _, err := a.cfg.Client.SetMachine(ctx, decl); err == nil {
				return
			} else {
				a.log.Warn("declare disks to the process server", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	// The uploaders outlive the loop: without a spool, stop sends what is
	// still in memory before the process ends (drainMemory).
	upCtx, upCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer upCancel()
	var upWG sync.WaitGroup
	a.uploading.Store(true)
	defer a.uploading.Store(false)
	for _, d := range a.disks {
		upWG.Add(1)
		go func() { defer upWG.Done(); d.up.Run(upCtx) }()
	}
	a.consumerWG.Add(1)
	go a.consume()
	var ackWG sync.WaitGroup
	ackCtx, ackCancel := context.WithCancel(ctx)
	ackWG.Add(1)
	go func() { defer ackWG.Done(); a.watchAcks(ackCtx) }()
	local, err := a.serveAPI(ctx)
	if err != nil {
		a.log.Warn("local API unavailable", "err", err)
	}
	if a.group == nil && a.cfg.Group.Server != nil {
		go a.pollProcessServer(ctx, a.cfg.Group.Server, 2*time.Second)
	}
	if a.group != nil {
		if err := a.startGroup(ctx); err != nil {
			a.log.Error("group points off", "err", err)
			a.mu.Lock()
			a.group.listenErr = err.Error()
			a.mu.Unlock()
		}
	}

	a.pointDue = time.Now()
	a.appDue = a.nextApp()
	err = a.loop(ctx)
	ackCancel()
	ackWG.Wait()
	stopErr := a.stop()
	cancel()
	upCancel()
	upWG.Wait()
	if local != nil {
		local.Close()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return stopErr
}

// consume feeds the tracker's events into the round bookkeeping.
func (a *Agent) consume() {
	defer a.consumerWG.Done()
	for batch := range a.tr.Events() {
		a.mu.Lock()
		for _, e := range batch {
			switch e.Kind {
			case tracker.EventQueued, tracker.EventDirty:
				a.rounds.Observe(filepath.Base(e.Extent.Disk), e.Extent.Offset, e.Extent.Length, e.Extent.Gen, int64(e.Time))
			case tracker.EventCut:
				a.cutSeen = max(a.cutSeen, e.Extent.Gen+1)
			}
		}
		a.mu.Unlock()
	}
}

// waitObserved returns once the consumer has observed every change of a
// generation below gen. The tracker's Cut returns when its cut event is in
// the events channel, which may still hold changes ahead of it that the
// consumer has not passed to rounds.Observe; a Begin before they are
// observed would fold them one round late, where they no longer taint the
// reads they overlapped (seen as a point missing a write, more often with
// several reads in flight competing with the consumer for the CPUs).
func (a *Agent) waitObserved(ctx context.Context, gen uint64) error {
	d := 20 * time.Microsecond
	for {
		a.mu.Lock()
		seen := a.cutSeen
		a.mu.Unlock()
		if seen >= gen {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the changes before cut %d: %w", gen, ctx.Err())
		case <-time.After(d):
		}
		d = min(2*d, 5*time.Millisecond)
	}
}

func (a *Agent) loop(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var sessions chan *group.Conn
	var groupReqs chan *pointRequest
	if a.group != nil {
		sessions, groupReqs = a.group.sessions, a.group.reqs
	}
	for {
		var groupErr error
		// While the memory backlog is full, a round also starts when the
		// server acknowledges a segment, not only after RoundInterval:
		// a server faster than MemoryBytes per RoundInterval would
		// otherwise wait idle for the next round. (On the project's VM
		// the server's intake was the bound, ~60 MB/s: PERFORMANCE.md.)
		var room chan struct{}
		if a.memoryFull() {
			room = a.room
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case gc := <-sessions:
			groupErr = a.member(ctx, gc)
		case req := <-groupReqs:
			a.group.waiting = append(a.group.waiting, req)
		case <-room:
			if a.stillFull() {
				continue // the timer stays armed
			}
		case req := <-a.pointReq:
			if req.app {
				a.appWaiting = append(a.appWaiting, req)
				a.appDue = time.Now()
			} else {
				a.waiting = append(a.waiting, req)
				a.pointDue = time.Now()
			}
		case <-timer.C:
		}
		var backlog bool
		var err error
		if asg, request, due := a.groupDue(); due && groupErr == nil {
			groupErr = a.groupRound(ctx, asg, request)
		}
		if groupErr != nil {
			err = groupErr
		} else if a.app == nil && !a.appDue.IsZero() && !time.Now().Before(a.appDue) && a.allProtected() {
			backlog, err = a.appRound(ctx)
		} else {
			backlog, err = a.round(ctx, 0, time.Time{})
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Error("round failed", "err", err, "hint", api.Hint(err))
			a.mu.Lock()
			a.cutErr = err.Error()
			a.mu.Unlock()
			timer.Reset(time.Second)
			continue
		}
		a.mu.Lock()
		a.cutErr = "" // shown until a round succeeds, not only between two
		a.mu.Unlock()
		if backlog || len(a.waiting) > 0 || a.app != nil {
			timer.Reset(0)
		} else {
			timer.Reset(a.cfg.RoundInterval)
		}
	}
}

// round runs one round of the optimistic cut (docs/ARCHITECTURE.md §4); it
// reports whether work is left for the next round right away. A round
// cuts the tracker (unless its caller, an app or group point's freeze,
// already did at gen), validates what the previous round read, cuts the
// points that validation allows, then reads and journals what changed.
func (a *Agent) round(ctx context.Context, gen uint64, cutAt time.Time) (bool, error) {
	gen, cutAt, err := a.cutGeneration(ctx, gen, cutAt)
	if err != nil {
		return false, err
	}
	crashPoint("cut")
	v := a.validatePrevious(gen, cutAt)
	// Every change before the cut is folded: persist what is pending
	// (crashlog.go).
	a.persistPending(gen)
	appDone, err := a.settleAppCut(v)
	if err != nil {
		return false, err
	}
	if err := a.settleCrashPoint(v, appDone); err != nil {
		return false, err
	}
	// Requests made during an initial sync or resync wait for it: a point
	// needs every disk complete in the journal.
	if err := a.waitCompleted(ctx, gen-1); err != nil {
		// What Begin folded stays pending, unread: the next cut must
		// not close a point over it.
		a.mu.Lock()
		a.rounds.Done()
		a.mu.Unlock()
		return false, err
	}
	a.checkGaps()
	if err := a.checkDivergence(ctx); err != nil {
		return false, err
	}
	spool, full := a.checkSpool()
	if full && a.cfg.SpoolBytes == 0 {
		// Nothing joins the open segments while the memory is full: send
		// them now rather than at their age.
		for _, d := range a.disks {
			if err := d.w.Rotate(); err != nil {
				return false, fmt.Errorf("journal of %s: %w", d.name, err)
			}
		}
	}
	backlog, err := a.readChanges(ctx, spool, full)
	if err != nil {
		return false, err
	}
	crashPoint("read")
	a.markSynchronised()
	if err := a.sealSegments(); err != nil {
		return false, err
	}
	crashPoint("sealed")
	return backlog && !full, nil
}

// waitCompleted waits until every write of generations <= gen has
// completed (docs/ARCHITECTURE.md §4: a block is read only once the writes
// reported before the cut have landed), for at most Config.CompletionWait.
// A write whose completion the tracker never counts would otherwise stop
// every later round, with nothing shown: the round fails instead, its
// error is a problem in the status, and the next round waits again.
func (a *Agent) waitCompleted(ctx context.Context, gen uint64) error {
	wctx, cancel := context.WithTimeout(ctx, a.cfg.CompletionWait)
	defer cancel()
	err := tracker.WaitCompleted(wctx, a.tr, gen)
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if r, ok := a.tr.(lostReaper); ok {
		reaped, rerr := r.ReapLost(gen)
		if rerr != nil {
			a.log.Warn("look for lost completions", "err", rerr)
		}
		if len(reaped) > 0 {
			// A tracker bug, not the device: say what was seen so it can
			// be found, and go on.
			a.log.Warn("the tracker missed the completion of writes long gone from their disk: forgotten",
				"cut", gen+1, "writes", reaped)
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			err = tracker.WaitCompleted(rctx, a.tr, gen)
			rcancel()
			if err == nil {
				return nil
			}
		}
	}
	inFlight := "some"
	if st, serr := a.tr.Stats(); serr == nil {
		inFlight = fmt.Sprint(st.InFlight)
	}
	return api.WithHint(fmt.Errorf("writes queued before cut %d have not completed after %s (%s in flight as the tracker counts them): no block is read until they have", gen+1, a.cfg.CompletionWait, inFlight),
		"a write to a protected disk is stalled: /sys/block/<disk>/inflight shows requests in flight (check the device and dmesg); "+
			"a completion the tracker missed is forgotten by the agent itself once the disk shows nothing in flight")
}

// lostReaper is the Linux tracker's repair of a completion it never saw
// (tracker.Linux.ReapLost).
type lostReaper interface {
	ReapLost(gen uint64) ([]tracker.InFlightWrite, error)
}

// cutGeneration cuts the tracker, unless gen is a cut already made at
// cutAt, and waits until every change before the cut has been observed.
func (a *Agent) cutGeneration(ctx context.Context, gen uint64, cutAt time.Time) (uint64, time.Time, error) {
	if gen == 0 {
		cutAt = time.Now()
		var err error
		if gen, err = a.tr.Cut(ctx); err != nil {
			return 0, cutAt, fmt.Errorf("cut: %w", err)
		}
	}
	a.readGen = gen - 1
	if err := a.waitObserved(ctx, gen); err != nil {
		return 0, cutAt, err
	}
	if d := time.Since(cutAt); d > 50*time.Millisecond {
		a.log.Debug("slow cut", "took", d)
	}
	return gen, cutAt, nil
}

// validation is what the cut at the start of a round tells about the
// reads of the previous round.
type validation struct {
	// clean: nothing the previous round read was touched after it was
	// cut, and it read everything pending; its point closes pointGen.
	clean    bool
	pointGen uint64
	tainted  int64     // bytes of the previous round's reads written since
	prevCut  time.Time // when the previous round's cut was made
}

// validatePrevious folds the changes before the cut gen into the rounds
// and checks the previous round's reads against them.
func (a *Agent) validatePrevious(gen uint64, cutAt time.Time) validation {
	a.mu.Lock()
	defer a.mu.Unlock()
	var v validation
	v.clean, v.pointGen, v.tainted = a.rounds.Begin(gen)
	v.prevCut = a.lastCut
	a.lastCut = cutAt
	a.lastRound = cutAt
	return v
}

// settleAppCut decides an app or group cut waiting for this round: its
// point is written if its frozen reads are valid, else it is tried again
// (app) or the group is told (group). It reports whether a point was
// written.
func (a *Agent) settleAppCut(v validation) (bool, error) {
	app := a.app
	if app == nil {
		return false, nil
	}
	a.app = nil
	valid := v.clean && v.pointGen == app.gen-1
	if app.decide != nil {
		if !app.decide(valid) {
			return false, nil
		}
		p, err := a.writeGroupPoint(app)
		app.done(p, err)
		return err == nil, err
	}
	if valid {
		return true, a.writeAppPoint(app)
	}
	a.appTries++
	msg := fmt.Sprintf("app-consistent point: writes after the thaw landed on %d bytes not yet read (attempt %d of %d)", v.tainted, a.appTries, a.cfg.MaxAppAttempts)
	a.log.Warn(msg)
	if a.appTries >= a.cfg.MaxAppAttempts {
		a.failApp(errors.New(msg + ": giving up until the next interval"))
	} else {
		a.appDue = time.Now()
	}
	return false, nil
}

// settleCrashPoint answers the point requests and the interval with the
// crash-consistent point the validation allows, or counts a round that
// did not converge.
func (a *Agent) settleCrashPoint(v validation, appDone bool) error {
	// The validated point is of the previous cut: it answers only the
	// requests made before that cut.
	var ready []*pointRequest
	for _, w := range a.waiting {
		if !w.at.After(v.prevCut) {
			ready = append(ready, w)
		}
	}
	due := !time.Now().Before(a.pointDue)
	want := len(a.waiting) > 0 || due
	switch {
	case appDone:
		// The app or group point is crash-consistent too.
		a.answer(ready, a.lastPoint)
		a.pointDue = time.Now().Add(a.cfg.PointInterval)
	case !want || !a.allProtected():
	case v.clean && (due || len(ready) > 0):
		return a.writePoint(v.pointGen, v.prevCut, ready)
	case !v.clean && v.tainted == 0:
		// Not a failure: the previous round could not read all that was
		// pending (a backlog, or metadata mode). Each round reads more of
		// it; the point is cut once a round has read everything, however
		// many rounds that takes, for as long as its callers wait.
	case !v.clean:
		a.attempts++
		if a.attempts >= a.cfg.MaxRounds {
			msg := fmt.Sprintf("point did not converge in %d rounds: writes keep landing on the blocks being read (%d bytes tainted in the last round)", a.attempts, v.tainted)
			a.log.Warn(msg)
			a.failPoints(errors.New(msg))
		}
	}
	return nil
}

// checkSpool returns the spool's bytes and whether it is full, and makes
// the tracker keep only the dirty set while it is.
func (a *Agent) checkSpool() (int64, bool) {
	spool := a.spoolBytes()
	a.mu.Lock()
	defer a.mu.Unlock()
	// Back out of metadata mode only once half the bound is free: near
	// the bound, the tracker would otherwise switch modes every round.
	limit := a.backlogLimit()
	full := spool >= limit || a.spoolFull && spool > limit/2
	if full != a.spoolFull {
		a.spoolFull = full
		a.modeSince = time.Now()
		switch {
		case full && a.cfg.SpoolBytes > 0:
			a.log.Warn("spool full: keeping only the dirty set until the server catches up", "spool_bytes", spool)
		case full:
			a.log.Warn("memory backlog full: tracking changed regions only (metadata mode) until the server catches up; no point until then", "memory_bytes", spool)
		default:
			a.log.Info("backlog has room again: reading the changed regions")
		}
		for _, d := range a.disks {
			a.sys.keepDirtySetOnly(a.tr, d.path, full)
		}
	}
	return spool, full
}

// readChanges reads and journals what is pending on every disk, within
// the round's budget and the spool's room; it reports whether anything is
// left.
func (a *Agent) readChanges(ctx context.Context, spool int64, full bool) (bool, error) {
	// Never journal more than the spool has room for: what does not fit
	// stays in the dirty set.
	budget := min(a.cfg.RoundBytes, max(0, a.backlogLimit()-spool))
	for _, d := range a.disks {
		if full {
			break
		}
		a.mu.Lock()
		oldest := a.rounds.Oldest(d.name)
		ranges := a.rounds.Take(d.name, budget)
		d.taking = ranges // pending until journaled (crashlog.go)
		resync := d.state == StateResync
		a.mu.Unlock()
		if resync && len(ranges) > 0 {
			// The replica must hold everything sent so far before its
			// blocks are compared.
			if err := a.flush(ctx, d); err != nil {
				return false, err
			}
		}
		for _, rg := range ranges {
			budget -= rg.Len
		}
		err := a.copyRanges(ctx, d, ranges)
		a.mu.Lock()
		d.taking = nil
		a.mu.Unlock()
		if err != nil {
			// What was not journaled is pending again: it stays to be read.
			a.mu.Lock()
			a.rounds.Done()
			a.mu.Unlock()
			return false, err
		}
		if seq, ok := d.w.Current(); ok && oldest > 0 && len(ranges) > 0 {
			a.mu.Lock()
			d.lagWait = append(d.lagWait, lagMark{seq: seq, oldest: oldest})
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rounds.Done()
	backlog := false
	for _, d := range a.disks {
		backlog = backlog || a.rounds.Pending(d.name) > 0
	}
	return backlog, nil
}

// markSynchronised turns a disk whose initial sync or resync has read
// everything into a protected one.
func (a *Agent) markSynchronised() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.disks {
		if d.state != StateProtected && a.rounds.Pending(d.name) == 0 {
			a.log.Info("disk synchronised", "disk", d.name, "was", d.state, "sent", d.sent, "equal", d.same)
			d.state = StateProtected
			d.done = d.total
			d.diverged = ""
		}
	}
}

// sealSegments seals the open segments old enough to travel and measures
// the RPO lag of what the server acknowledged.
func (a *Agent) sealSegments() error {
	for _, d := range a.disks {
		if _, err := d.w.RotateIfOlder(a.sealAge(d)); err != nil {
			return fmt.Errorf("journal of %s: %w", d.name, err)
		}
		a.measureLag(d)
	}
	return nil
}

func (a *Agent) allProtected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.disks {
		if d.state != StateProtected {
			return false
		}
	}
	return true
}

// checkGaps turns a disk whose tracking lost changes into a resync.
func (a *Agent) checkGaps() {
	for _, d := range a.disks {
		if err := a.tr.Gap(d.path); err != nil && d.state != StateResync {
			a.log.Warn("tracking gap: resyncing", "disk", d.name, "reason", err)
			a.tr.AckGap(d.path)
			a.counts.resync(d.name)
			a.mu.Lock()
			d.state = StateResync
			d.reason = err.Error()
			var rr *tracker.ResyncRequiredError
			if errors.As(err, &rr) {
				d.reason = rr.Reason
			}
			a.rounds.MarkPending(d.name, 0, d.size)
			d.total, d.done, d.sent, d.same = d.size, 0, 0, 0
			d.syncStart, d.syncStartDone = time.Now(), 0
			a.mu.Unlock()
		}
	}
}

// flush seals the open segment of a disk and waits until the server has
// acknowledged everything.
func (a *Agent) flush(ctx context.Context, d *disk) error {
	if err := d.w.Rotate(); err != nil {
		return fmt.Errorf("journal of %s: %w", d.name, err)
	}
	return d.up.WaitIdle(ctx)
}

func (a *Agent) writePoint(gen uint64, at time.Time, answer []*pointRequest) error {
	p, err := a.writeCut(newPointID(), hrlfmt.CutCrash, gen, at, nil)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lastPoint = p
	a.pointErr = ""
	a.mu.Unlock()
	a.pointDue = time.Now().Add(a.cfg.PointInterval)
	a.attempts = 0
	a.answer(answer, p)
	a.log.Info("point", "id", p.ID, "gen", gen)
	if err := a.save(); err != nil {
		return err
	}
	crashPoint("point")
	return nil
}

// answer answers point requests and forgets them.
func (a *Agent) answer(reqs []*pointRequest, p Point) {
	for _, w := range reqs {
		w.resp <- pointResult{p: p}
	}
	a.waiting = slices.DeleteFunc(a.waiting, func(w *pointRequest) bool { return slices.Contains(reqs, w) })
}

// writeCut puts a point's NOTE (if any) and CUT into every disk's journal
// and seals the segments, so the point travels at once.
func (a *Agent) writeCut(id string, kind hrlfmt.CutKind, gen uint64, at time.Time, note *hrlfmt.Note) (Point, error) {
	c := hrlfmt.Cut{Kind: kind, Gen: gen, Time: at, PointID: id}
	for _, d := range a.disks {
		if note != nil {
			if err := d.w.WriteNote(*note); err != nil {
				return Point{}, fmt.Errorf("write point note to the journal of %s: %w", d.name, err)
			}
		}
		if err := d.w.WriteCut(c); err != nil {
			return Point{}, fmt.Errorf("write point to the journal of %s: %w", d.name, err)
		}
		// Seal it now, so the point travels without waiting for the age.
		if err := d.w.Rotate(); err != nil {
			return Point{}, fmt.Errorf("journal of %s: %w", d.name, err)
		}
	}
	a.counts.point(kind)
	p := Point{ID: id, Time: at, Gen: gen, Kind: kind.String()}
	if note != nil {
		p.FreezeSeconds = note.Freeze.Seconds()
	}
	return p, nil
}

func (a *Agent) failPoints(err error) {
	a.mu.Lock()
	a.pointErr = err.Error()
	a.mu.Unlock()
	for _, w := range a.waiting {
		w.resp <- pointResult{err: err}
	}
	a.waiting = nil
	a.attempts = 0
	a.pointDue = time.Now().Add(a.cfg.PointInterval)
}

// Bookmark asks for a point now (app: app-consistent, with scripts and a
// freeze) and returns it once its cut is in the journal.
func (a *Agent) Bookmark(ctx context.Context, app bool) (Point, error) {
	return requestPoint(ctx, a.pointReq, &pointRequest{at: time.Now(), app: app, resp: make(chan pointResult, 1)})
}

// requestPoint hands req to the loop on ch and waits for its answer.
func requestPoint(ctx context.Context, ch chan<- *pointRequest, req *pointRequest) (Point, error) {
	select {
	case ch <- req:
	case <-ctx.Done():
		return Point{}, ctx.Err()
	}
	select {
	case r := <-req.resp:
		return r.p, r.err
	case <-ctx.Done():
		return Point{}, ctx.Err()
	}
}

// WaitListed waits until the server lists the point.
func (a *Agent) WaitListed(ctx context.Context, id string) error {
	for {
		p, err := a.cfg.Client.Point(ctx, id)
		if err == nil && p.Listed {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("point %s not listed: %w (last error: %v)", id, ctx.Err(), err)
			}
			return fmt.Errorf("point %s not listed yet: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *Agent) spoolBytes() int64 {
	var n int64
	for _, d := range a.disks {
		n += d.up.Status().Bytes + d.unsealed.Load()
	}
	return n
}

// stop ends in order: the tracker stays pinned, the backlog is saved.
func (a *Agent) stop() error {
	var errs []error
	for _, d := range a.disks {
		if err := d.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close journal of %s: %w", d.name, err))
		}
	}
	if err := a.drainMemory(); err != nil {
		errs = append(errs, err)
	}
	if err := a.tr.Close(); err != nil {
		errs = append(errs, err)
	}
	a.consumerWG.Wait()
	a.mu.Lock()
	for _, d := range a.disks {
		p := a.st.Disks[d.name]
		p.Backlog = nil
		for _, r := range a.rounds.PendingRanges(d.name) {
			p.Backlog = append(p.Backlog, [2]int64{r.Off, r.Len})
		}
		p.State, p.NextSeq, p.Total, p.Done = d.state, d.nextSeq, d.total, d.done
		d.dev.close()
		if d.cp != nil {
			d.cp.close()
		}
	}
	a.st.Clean = len(errs) == 0
	err := a.saveLocked()
	a.mu.Unlock()
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (a *Agent) save() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.saveLocked()
}

func (a *Agent) saveLocked() error {
	for _, d := range a.disks {
		if p := a.st.Disks[d.name]; p != nil {
			p.State, p.NextSeq, p.Total, p.Done = d.state, d.nextSeq, d.total, d.done
		}
	}
	return saveState(a.cfg.StateDir, a.st)
}

func (a *Agent) closeAll() {
	for _, d := range a.disks {
		if d.dev != nil {
			d.dev.close()
		}
		if d.w != nil {
			d.w.Close()
		}
	}
	if a.tr != nil {
		a.tr.Close()
	}
}

func newPointID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// readTime dates the end of a read on the clock of the tracker's queue
// times, handing it to the tracker: a change queued later carries a time
// no earlier, so it does not taint the read. Without a tracker (unit
// tests of the copy) it is the clock alone.
func (a *Agent) readTime() int64 {
	if a.tr == nil {
		return monotonicNow()
	}
	return int64(a.tr.Now())
}

// measureLag turns the rounds whose segments the server has acknowledged
// into RPO lag samples: from the oldest write of the round being queued to
// its data being durable on the server.
func (a *Agent) measureLag(d *disk) {
	acked := d.up.Status().NextSeq
	now := monotonicNow()
	a.mu.Lock()
	defer a.mu.Unlock()
	i := 0
	for ; i < len(d.lagWait) && d.lagWait[i].seq < acked; i++ {
		lag := time.Duration(now - d.lagWait[i].oldest)
		d.lag.add(lag)
		a.counts.observe(func(h *histograms) { h.lag.WithLabelValues(d.name).Observe(lag.Seconds()) })
	}
	d.lagWait = d.lagWait[i:]
}
