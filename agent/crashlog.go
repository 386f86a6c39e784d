package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// A crash (kill -9, an OOM kill) of the agent with the tracker pinned in
// the kernel resyncs only what was pending, not the whole disk by hashes.
// At every round's cut G the agent persists, crash-safely, what it still
// has to make durable on the server (STATE/pending.json, a few KiB,
// replaced atomically; see writeReplace): the
// pending regions, the changes it observed but did not fold yet, and the
// regions in segments the server has not acknowledged (they die with the
// process without a spool). Every change of generations < G is then in
// that file or on the server, so the agent tells the tracker's kernel
// change log (tracker/dirtylog_linux.go) to forget them
// (SettleChangeLog). The log keeps what came since, which the agent may
// have taken from the tracker's rings before it died. A new agent that
// adopts the pinned tracker reads the file, plus the log, plus the events
// still in the rings: nothing is lost, and it reads about the backlog at
// the kill. A reboot, lost pins, a tracking gap or a missing or stale file
// still resync by hashes, with the reason in agentctl status.
//
// The file follows the backlog between cuts too: it is rewritten when the
// server acknowledges segments (watchAcks), and a region the current round
// read leaves it once the segment holding it is acknowledged, not at the
// next cut. Of what the new agent reads, the regions the tracker reports
// changed before its first cut (the writes made while no agent ran, and
// those the dead one had not taken from the rings) are read anyway: the
// first round logs what the crash made it read beyond them
// (reread_bytes, logReread).

// changeLog is the tracker's kernel change log; *tracker.Linux has one.
// Without it (Windows, unit tests' fake) a crash means a resync.
type changeLog interface {
	ArmChangeLog(path string) (bool, error)
	ChangeLog(path string) ([]tracker.Range, error)
	SettleChangeLog(paths []string, gen uint64) error
}

const pendingFileName = "pending.json"

// pendingFile is STATE/pending.json.
type pendingFile struct {
	// BootID and Gen: the boot and the cut it was written at; a file of
	// another boot is never used.
	BootID string                  `json:"boot_id"`
	Gen    uint64                  `json:"gen"`
	Disks  map[string]*pendingDisk `json:"disks"`
}

type pendingDisk struct {
	State  DiskState `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Total  int64     `json:"sync_total,omitempty"`
	Done   int64     `json:"sync_done,omitempty"`
	Bytes  int64     `json:"bytes"`
	// Ranges: [offset, length] pairs, to read again after a crash.
	Ranges [][2]int64 `json:"ranges"`
}

func loadPending(dir string) (*pendingFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, pendingFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", pendingFileName, err)
	}
	var p pendingFile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, pendingFileName), err)
	}
	return &p, nil
}

// segRange is a region journaled into segment seq (or an earlier one).
type segRange struct {
	seq    uint64
	off, n int64
}

// noteJournaled records that [off, off+n) went into the journal of d, in
// its current segment or an earlier one: it is pending after a crash until
// that segment is acknowledged.
// It also takes the region out of d.taking, which then holds only what is
// read but not journaled: the status counts d.taking as pending and the
// journaled bytes as held, and counted a round's journaled reads twice
// until the round's reads all ended.
func (a *Agent) noteJournaled(d *disk, off, n int64) {
	var seq uint64
	if a.clog != nil {
		seq, _ = d.w.Current()
	}
	a.mu.Lock()
	d.taking = trimTaking(d.taking, off, off+n)
	if a.clog != nil {
		d.inSegs = append(d.inSegs, segRange{seq: seq, off: off, n: n})
	}
	a.mu.Unlock()
}

// trimTaking removes from the front of rs, the ranges a round took, what
// the chunk [off, end) journaled: chunks are journaled in the order of the
// ranges (copy.go's chunks, each within its range or its alignment). A
// range cut short goes into a new slice: rs shares its array with the
// round's own list. Anything unexpected leaves rs as it is, which only
// persists and shows more.
func trimTaking(rs []tracker.Range, off, end int64) []tracker.Range {
	for len(rs) > 0 {
		r := rs[0]
		if r.Off < off || r.Off >= end {
			break
		}
		if r.End() <= end {
			rs = rs[1:]
			continue
		}
		rest := make([]tracker.Range, len(rs))
		copy(rest, rs)
		rest[0] = tracker.Range{Off: end, Len: r.End() - end}
		return rest
	}
	return rs
}

// pendingNow returns the file that covers everything not yet durable on
// the server, as of cut gen.
func (a *Agent) pendingNow(gen uint64) *pendingFile {
	pf := &pendingFile{BootID: a.bootID, Gen: gen, Disks: map[string]*pendingDisk{}}
	acked := make([]uint64, len(a.disks))
	for i, d := range a.disks {
		acked[i] = d.up.Status().NextSeq
	}
	// Under the lock only the copy of the ranges: sorting and merging a
	// large backlog there held up the consumer of the tracker's events and
	// the rounds (measured: 39 % of the agent's CPU in a backlog of 3 GiB
	// at 250 MB/s of churn, all of it under the lock).
	type snap struct {
		rs []tracker.Range
		pd *pendingDisk
	}
	snaps := make([]snap, len(a.disks))
	a.mu.Lock()
	for i, d := range a.disks {
		// Not the round's reads (rounds.appendPending has them until the
		// next cut): each is in d.taking until journaled, then in inSegs
		// until its segment is acknowledged, and once acknowledged it is
		// durable as read, any change since is unfolded or in the kernel's
		// change log. Keeping them made a crash read again up to a round
		// of churn the server already held (measured: 8.7 MB persisted
		// for a backlog of 2.5 MB at the kill).
		rs := a.rounds.appendUnread(nil, d.name)
		rs = append(rs, d.taking...)
		k := 0
		for _, r := range d.inSegs {
			// Every segment below NextSeq is durable: the server makes
			// segments durable and acknowledges them in sequence order,
			// pipelined or not (server/process/pipeline.go).
			if r.seq >= acked[i] {
				rs = append(rs, tracker.Range{Off: r.off, Len: r.n})
				d.inSegs[k] = r
				k++
			}
		}
		d.inSegs = d.inSegs[:k]
		pd := &pendingDisk{State: d.state, Total: d.total, Done: d.done}
		if d.state == StateResync {
			pd.Reason = d.reason
		}
		snaps[i] = snap{rs: rs, pd: pd}
	}
	a.mu.Unlock()
	for i, d := range a.disks {
		pd := snaps[i].pd
		rs := mergeRanges(snaps[i].rs)
		for _, r := range rs {
			pd.Bytes += r.Len
		}
		for _, r := range coarsen(rs, maxPendingRanges) {
			pd.Ranges = append(pd.Ranges, [2]int64{r.Off, r.Len})
		}
		pf.Disks[d.name] = pd
	}
	return pf
}

// persistPending writes what is pending as of cut gen (crash-safely; not
// again when it has not changed) and lets the kernel's change log forget
// the changes before gen. It never fails a round: without a file the log
// just keeps more, and the next start reads more.
func (a *Agent) persistPending(gen uint64) {
	if a.clog == nil {
		return
	}
	a.logReread()
	a.pendingMu.Lock()
	defer a.pendingMu.Unlock()
	a.pendingGen = gen
	a.writePendingLocked()
	if gen == 0 || !a.pendingOK {
		return // at the start, before any cut of this process
	}
	crashPoint("persisted")
	paths := make([]string, len(a.disks))
	for i, d := range a.disks {
		paths[i] = d.path
	}
	if err := a.clog.SettleChangeLog(paths, gen); err != nil && !errors.Is(err, tracker.ErrGenerationMoved) {
		a.log.Warn("settle the kernel change log", "err", err)
	}
	crashPoint("settled")
}

// logReread says, once, at the first round after a start that read
// again what a crash left (readCrash), how much of it was not written
// again since: the changes the tracker reported before that round's cut,
// mostly writes made while no agent ran (50 MB/s for the 0.3-0.6 s of a
// restart: 15-30 MB), are read anyway and are no re-read; the rest is
// what the crash cost, to compare with the backlog at the kill.
func (a *Agent) logReread() {
	for _, d := range a.disks {
		a.mu.Lock()
		n, ok := a.rounds.Reread(d.name)
		recovered := d.recovered
		a.mu.Unlock()
		if ok {
			a.log.Info("after the crash: read again beyond the changes the tracker reported since", "disk", d.name,
				"reread_bytes", n, "recovered_bytes", recovered, "written_since_bytes", recovered-n)
		}
	}
}

// writePendingLocked writes what is pending now, unless it has not
// changed. Any later snapshot covers what an earlier one did that is not
// durable yet: a region leaves the set only once acknowledged by the
// server.
func (a *Agent) writePendingLocked() {
	b, err := json.Marshal(a.pendingNow(a.pendingGen))
	if err != nil {
		a.log.Warn("encode pending regions", "err", err)
		return
	}
	// The generation changes every round: compare what matters.
	if body := b[strings.Index(string(b), `"disks"`):]; string(body) != a.lastPending {
		if err := writeReplace(filepath.Join(a.cfg.StateDir, pendingFileName), b); err != nil {
			a.log.Warn("persist pending regions: a crash now would resync by hashes", "err", err)
			a.pendingOK = false
			return
		}
		a.lastPending = string(body)
		a.pendingOK = true
	}
}

// watchAcks rewrites the pending regions when the server acknowledges
// segments between two rounds: a crash then reads again about the backlog
// of that moment, not the segments acknowledged since the last cut (a
// segment holds up to a second of churn).
func (a *Agent) watchAcks(ctx context.Context) {
	if a.clog == nil {
		return
	}
	acked := make([]uint64, len(a.disks))
	wait := watchAcksEvery
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		moved := false
		for i, d := range a.disks {
			if n := d.up.Status().NextSeq; n != acked[i] {
				acked[i], moved = n, true
			}
		}
		wait = watchAcksEvery
		if moved {
			start := time.Now()
			a.pendingMu.Lock()
			if a.pendingOK {
				a.writePendingLocked()
			}
			a.pendingMu.Unlock()
			// A large, fragmented backlog costs more to write: at most a
			// tenth of a CPU goes to it. A crash then reads again a little
			// more of what was acknowledged, never less than is pending.
			wait = max(wait, 10*time.Since(start))
		}
		t.Reset(wait)
	}
}

// watchAcksEvery is how often watchAcks looks for acknowledgements.
const watchAcksEvery = 50 * time.Millisecond

// recoverCrash decides whether a disk of an agent that did not stop
// cleanly can go on from what it persisted: it returns the file's record
// for the disk, or why not (shown as the resync's reason).
func (a *Agent) recoverCrash(d *disk, pf *pendingFile, pfErr error) (*pendingDisk, string) {
	switch {
	case a.clog == nil:
		return nil, "the agent did not stop cleanly (this tracker keeps no change log)"
	case !d.logArmed:
		return nil, "the agent did not stop cleanly and the tracker's change log was not running"
	case pfErr != nil:
		return nil, "the agent did not stop cleanly and its pending regions are unreadable: " + pfErr.Error()
	case pf == nil || pf.Disks[d.name] == nil:
		return nil, "the agent did not stop cleanly and left no pending regions"
	case pf.BootID != a.bootID:
		return nil, "the agent did not stop cleanly and its pending regions are of another boot"
	}
	return pf.Disks[d.name], ""
}

// crashAt is LIFEBOAT_AGENT_CRASH_AT, "phase" or "phase:n": the agent
// kills itself (SIGKILL) the n-th time (default 1) it reaches that phase of
// a round, so tests can kill it in each phase (e2e). Unset in production.
var crashAt struct {
	once  sync.Once
	phase string
	n     int
	mu    sync.Mutex
}

// crashPoint kills the process if LIFEBOAT_AGENT_CRASH_AT names phase.
func crashPoint(phase string) {
	crashAt.once.Do(func() {
		v := os.Getenv("LIFEBOAT_AGENT_CRASH_AT")
		p, n, ok := strings.Cut(v, ":")
		crashAt.phase, crashAt.n = p, 1
		if ok {
			if k, err := strconv.Atoi(n); err == nil && k > 0 {
				crashAt.n = k
			}
		}
	})
	if crashAt.phase == "" || crashAt.phase != phase {
		return
	}
	crashAt.mu.Lock()
	crashAt.n--
	hit := crashAt.n == 0
	crashAt.mu.Unlock()
	if hit {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Kill()
		}
		select {} // SIGKILL is on its way
	}
}

// armChangeLog starts the kernel change log of every disk, or notes that
// it ran already (a tracker adopted from its pins).
func (a *Agent) armChangeLog() {
	cl, ok := a.tr.(changeLog)
	if !ok {
		return
	}
	for _, d := range a.disks {
		armed, err := cl.ArmChangeLog(d.path)
		if err != nil {
			a.log.Warn("kernel change log unavailable: a crash of the agent will resync by hashes", "disk", d.name, "err", err)
			return
		}
		d.logArmed = armed
	}
	a.clog = cl
}

// readCrash makes the disk go on after a crash from what the dead agent
// persisted plus what the kernel's change log holds; it returns why not,
// or "".
func (a *Agent) readCrash(d *disk, pd *pendingDisk) string {
	logged, err := a.clog.ChangeLog(d.path)
	if err != nil {
		return "the agent did not stop cleanly and the tracker's change log is unreadable: " + err.Error()
	}
	var s tracker.Set
	for _, r := range pd.Ranges {
		s.Add(r[0], r[1])
	}
	var fromLog tracker.Set
	for _, r := range logged {
		fromLog.Add(r.Off, r.Len)
		s.Add(r.Off, r.Len)
	}
	a.rounds.MarkRecovered(d.name, &s)
	d.state, d.reason, d.total, d.done = pd.State, pd.Reason, pd.Total, pd.Done
	if d.state == "" {
		d.state = StateProtected
	}
	d.recovered = s.Bytes()
	a.log.Warn("the agent did not stop cleanly: reading again only what was pending, no resync", "disk", d.name, "state", string(d.state),
		"recovered_bytes", d.recovered, "persisted_bytes", pd.Bytes, "kernel_log_bytes", fromLog.Bytes())
	return ""
}

// maxPendingRanges bounds the ranges persisted per disk, so the file stays
// small (tens of KiB) however fragmented a backlog is (metadata mode under
// small random writes): beyond it ranges are widened to coarser granules,
// which only a crash pays for, by reading more.
const maxPendingRanges = 1024

// coarsen returns ranges covering rs, at most max of them: rs widened to
// granules of 64 KiB, then 4 times coarser until they fit.
func coarsen(rs []tracker.Range, max int) []tracker.Range {
	for g := int64(64 << 10); len(rs) > max; g *= 4 {
		wide := make([]tracker.Range, len(rs))
		for i, r := range rs {
			lo := r.Off / g * g
			hi := (r.End() + g - 1) / g * g
			wide[i] = tracker.Range{Off: lo, Len: hi - lo}
		}
		rs = mergeRanges(wide)
	}
	return rs
}

// writeReplace replaces path with data through a temporary file and a
// rename, without fsync: the file is read only after a crash of the agent
// in the same boot (its boot id must match), and a process crash loses
// nothing the kernel's page cache holds, while the rename makes the
// replacement atomic. A crash of the machine is a reboot, hence a resync
// that does not read the file. Not syncing keeps the round free of a
// flush of the host's disk (and the host's disk free of journal commits).
func writeReplace(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), fsutil.TempPrefix(filepath.Base(path))+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rangeBytes returns the bytes of rs (the status counts a round's reads in
// flight as pending: they are not durable yet).
func rangeBytes(rs []tracker.Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Len
	}
	return n
}
