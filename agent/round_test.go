package agent

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestRoundCutsCrashConsistentPoint: the first round reads the whole disk
// (initial sync); the next cut finds those reads untouched and closes a
// point at the generation before the first cut, and the journal up to its
// CUT rebuilds the disk exactly.
func TestRoundCutsCrashConsistentPoint(t *testing.T) {
	ta := newTestAgent(t, 2)
	if ta.round(t) {
		t.Fatal("the initial sync of two small disks left a backlog")
	}
	if ta.lastPoint.ID != "" {
		t.Fatalf("a point before any read was validated: %+v", ta.lastPoint)
	}
	for i, d := range ta.disks {
		if d.state != StateProtected {
			t.Fatalf("disk %d is %s after reading all of it", i, d.state)
		}
		if got := readsOf(ta.journal(t, i)); !slices.Equal(got, [][2]int64{{0, testDiskSize}}) {
			t.Fatalf("disk %d: the initial sync read %v, want all of it", i, got)
		}
	}
	ta.round(t)
	if ta.lastPoint.ID == "" || ta.lastPoint.Gen != 1 || ta.lastPoint.Kind != "crash" {
		t.Fatalf("second round: point %+v, want a crash point of generation 1 (the first cut returned 2)", ta.lastPoint)
	}
	for i := range ta.disks {
		recs := ta.journal(t, i)
		if c := cuts(recs); !slices.Equal(c, []uint64{1}) {
			t.Fatalf("disk %d: cuts %v in the journal, want [1]", i, c)
		}
		img, ok := imageAt(recs, testDiskSize, 1)
		if !ok {
			t.Fatal("no CUT of generation 1")
		}
		sameImage(t, "point of generation 1", img, fileContent(t, ta.files[i]))
	}
}

// TestRoundTaintedReadIsReadAgain: a write queued before a round's read of
// its block ended, reported after the next cut, taints that read: no point
// is cut at that round, the block is read again, and the point of the
// round after holds the new data.
func TestRoundTaintedReadIsReadAgain(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t) // initial sync
	ta.round(t) // point of generation 1
	if ta.lastPoint.Gen != 1 {
		t.Fatalf("point %+v, want generation 1", ta.lastPoint)
	}

	const off, n = 64 << 10, 4 << 10
	ta.rewrite(t, 0, off, n, 0) // generation 3
	beforeRead := monotonicNow()
	ta.round(t) // cut 4: reads [off, off+n)
	if got := readsOf(ta.journal(t, 0)); !slices.Equal(got[len(got)-1:], [][2]int64{{off, n}}) {
		t.Fatalf("round after the write read %v, want [%d,+%d) last", got, off, n)
	}
	// A second write to the same block, queued while that read ran (its
	// queue time is before the read ended) and reported after the cut.
	ta.rewrite(t, 0, off, n, beforeRead) // generation 4
	ta.pointDue = time.Time{}            // a point is due now
	ta.round(t)                          // cut 5: the read of round 3 is tainted
	if ta.lastPoint.Gen != 1 {
		t.Fatalf("a point was cut over a tainted read: %+v", ta.lastPoint)
	}
	if ta.attempts != 1 {
		t.Fatalf("attempts = %d after a tainted round, want 1", ta.attempts)
	}
	recs := ta.journal(t, 0)
	reads := readsOf(recs)
	if !slices.Equal(reads[len(reads)-2:], [][2]int64{{off, n}, {off, n}}) {
		t.Fatalf("reads %v: the tainted block was not read again", reads)
	}
	ta.round(t) // cut 6: validates round 4's read
	if ta.lastPoint.Gen != 4 {
		t.Fatalf("point %+v, want generation 4 (the cut before the re-read returned 5)", ta.lastPoint)
	}
	recs = ta.journal(t, 0)
	if c := cuts(recs); !slices.Equal(c, []uint64{1, 4}) {
		t.Fatalf("cuts %v, want [1 4]", c)
	}
	img, _ := imageAt(recs, testDiskSize, 4)
	sameImage(t, "point of generation 4", img, fileContent(t, ta.files[0]))
}

// TestRoundWriteNeverCompleted: a write the tracker keeps counting in
// flight (its completion was never reported) fails the round after
// Config.CompletionWait instead of stopping the agent for ever with
// nothing shown, and no point is cut over the change that round could not
// read; once the write completes, the next rounds read it and cut a point
// that holds it.
func TestRoundWriteNeverCompleted(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.cfg.CompletionWait = 100 * time.Millisecond
	ta.round(t) // initial sync
	ta.round(t) // point of generation 1
	if ta.lastPoint.Gen != 1 {
		t.Fatalf("point %+v, want generation 1", ta.lastPoint)
	}
	const off, n = 64 << 10, 4 << 10
	ta.rewrite(t, 0, off, n, 0)
	ta.tr.stuck.Store(true)
	ta.pointDue = time.Time{}
	done := make(chan error, 1)
	go func() {
		_, err := ta.Agent.round(context.Background(), 0, time.Time{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "have not completed") {
			t.Fatalf("round with a write in flight for ever: %v, want it to fail as not completed", err)
		}
		if api.Hint(err) == "" {
			t.Errorf("error %q has no hint", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the round still waits for the write after 10 s (CompletionWait is 100 ms)")
	}
	// The failed round closed the point before the write's generation.
	before := ta.lastPoint
	ta.tr.stuck.Store(false)
	ta.pointDue = time.Time{}
	ta.round(t) // reads the change the failed round folded
	if ta.lastPoint != before {
		img, _ := imageAt(ta.journal(t, 0), testDiskSize, ta.lastPoint.Gen)
		t.Fatalf("point %+v cut over a change no round had read (image equals the disk: %v)", ta.lastPoint, bytes.Equal(img, fileContent(t, ta.files[0])))
	}
	if got := readsOf(ta.journal(t, 0)); !slices.Equal(got[len(got)-1:], [][2]int64{{off, n}}) {
		t.Fatalf("reads %v, want [%d,+%d) last", got, off, n)
	}
	ta.pointDue = time.Time{}
	ta.round(t)
	if ta.lastPoint.Gen <= 1 {
		t.Fatalf("no point after the write completed: %+v", ta.lastPoint)
	}
	img, ok := imageAt(ta.journal(t, 0), testDiskSize, ta.lastPoint.Gen)
	if !ok {
		t.Fatalf("no CUT of generation %d", ta.lastPoint.Gen)
	}
	sameImage(t, "point after the write completed", img, fileContent(t, ta.files[0]))
}

// TestRoundReapsLostCompletion: a write whose completion the tracker
// lost, while its disk shows nothing in flight, is forgotten after
// Config.CompletionWait and the round goes on with its point; a write
// still on its disk (ReapLost finds nothing) fails the round as before.
func TestRoundReapsLostCompletion(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.cfg.CompletionWait = 100 * time.Millisecond
	ta.round(t) // initial sync
	ta.round(t) // point of generation 1
	const off, n = 64 << 10, 4 << 10
	ta.rewrite(t, 0, off, n, 0)
	ta.tr.stuck.Store(true)
	ta.tr.lost.Store(true)
	ta.pointDue = time.Time{}
	ta.round(t)
	if ta.tr.reaps.Load() == 0 || ta.tr.stuck.Load() {
		t.Fatalf("reaps %d, still stuck %v: the lost completion was not reaped", ta.tr.reaps.Load(), ta.tr.stuck.Load())
	}
	if got := readsOf(ta.journal(t, 0)); !slices.Equal(got[len(got)-1:], [][2]int64{{off, n}}) {
		t.Fatalf("reads %v, want [%d,+%d) last: the round after the reap did not read the change", got, off, n)
	}
	ta.pointDue = time.Time{}
	ta.round(t) // lists the point the reaped round cut
	if ta.lastPoint.Gen <= 1 {
		t.Fatalf("no point after the reap: %+v", ta.lastPoint)
	}
	img, _ := imageAt(ta.journal(t, 0), testDiskSize, ta.lastPoint.Gen)
	sameImage(t, "point after the reap", img, fileContent(t, ta.files[0]))
}

// TestRoundPointRequestWaitsForConvergence: a point asked for is answered
// by the first clean round after it, with the point that round closed.
func TestRoundPointRequestWaitsForConvergence(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	req := &pointRequest{at: time.Now(), resp: make(chan pointResult, 1)}
	ta.waiting = append(ta.waiting, req)
	ta.round(t) // validates round 2, whose cut was made before the request
	select {
	case r := <-req.resp:
		t.Fatalf("answered with a point cut before the request: %+v", r.p)
	default:
	}
	ta.round(t)
	select {
	case r := <-req.resp:
		if r.err != nil || r.p.Gen != 3 {
			t.Fatalf("answer %+v, %v; want the point of generation 3", r.p, r.err)
		}
	default:
		t.Fatal("request not answered by a clean round cut after it")
	}
}

// TestAppPointPhases: an app-consistent point freezes, cuts while frozen,
// thaws, and is written by the round that validates the frozen reads, at
// the generation before its cut.
func TestAppPointPhases(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	const off, n = 128 << 10, 8 << 10
	// A write the freeze flushes: read while frozen.
	ta.fz.onFreeze = func() { ta.rewrite(t, 0, off, n, 0) }
	if _, err := ta.appRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ta.app == nil {
		t.Fatalf("no app cut waiting for validation (app error %q)", ta.appErr)
	}
	steps := ta.trace.get()
	fi := slices.Index(steps, "freeze")
	if fi < 0 || fi+2 >= len(steps) || !strings.HasPrefix(steps[fi+1], "cut ") || steps[fi+2] != "thaw" {
		t.Fatalf("steps %v: want freeze, cut, thaw in a row", steps)
	}
	cutGen := ta.app.gen
	if steps[fi+1] != "cut "+itoa(cutGen) {
		t.Fatalf("steps %v: the frozen cut is not the app cut's generation %d", steps, cutGen)
	}
	if got := readsOf(ta.journal(t, 0)); !slices.Contains(got, [2]int64{off, n}) {
		t.Fatalf("reads %v: the block written before the freeze was not read while frozen", got)
	}
	ta.round(t) // validates
	if ta.lastApp.ID == "" || ta.lastApp.Kind != "app" || ta.lastApp.Gen != cutGen-1 {
		t.Fatalf("app point %+v, want kind app at generation %d (app error %q)", ta.lastApp, cutGen-1, ta.appErr)
	}
	if ta.lastPoint.ID != ta.lastApp.ID {
		t.Fatalf("the app point is not the last point: %+v", ta.lastPoint)
	}
	img, ok := imageAt(ta.journal(t, 0), testDiskSize, cutGen-1)
	if !ok {
		t.Fatal("no CUT of the app point in the journal")
	}
	sameImage(t, "app point", img, fileContent(t, ta.files[0]))
}

// TestAppPointTaintedFrozenReadIsRetried: a write that lands on a block
// read while frozen before the validating cut fails the attempt: no app
// point, a new attempt at once.
func TestAppPointTaintedFrozenReadIsRetried(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	const off, n = 128 << 10, 8 << 10
	var frozenAt int64
	ta.fz.onFreeze = func() { frozenAt = monotonicNow(); ta.rewrite(t, 0, off, n, 0) }
	if _, err := ta.appRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	ta.fz.onFreeze = nil
	ta.rewrite(t, 0, off, n, frozenAt) // queued before the frozen read ended
	ta.round(t)
	if ta.lastApp.ID != "" {
		t.Fatalf("an app point over a tainted frozen read: %+v", ta.lastApp)
	}
	if ta.appTries != 1 || ta.appDue.After(time.Now()) {
		t.Fatalf("appTries %d, due %v: want a second attempt at once", ta.appTries, ta.appDue)
	}
}

// TestAppPointFreezeFails: a freeze that fails fails the point with its
// cause, and nothing is thawed that was not frozen.
func TestAppPointFreezeFails(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	ta.fz.freezeErr = errors.New("FIFREEZE /fake: device busy")
	if _, err := ta.appRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ta.appErr, "app-consistent point: FIFREEZE /fake: device busy") {
		t.Fatalf("app error %q", ta.appErr)
	}
	if slices.Contains(ta.trace.get(), "thaw") {
		t.Fatalf("thawed what was not frozen: %v", ta.trace.get())
	}
	if ta.app != nil || ta.lastApp.ID != "" {
		t.Fatal("a failed freeze left an app cut")
	}
}

// TestSpoolFullKeepsDirtySetOnly: with the spool full the tracker is told
// to keep only the dirty set and nothing is read; with room again, it
// reports extents and the backlog is read.
func TestSpoolFullKeepsDirtySetOnly(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	ta.cfg.SpoolBytes = 1 // the initial sync's segments (not sent) fill it
	ta.round(t)
	p := ta.sys.(*fakePlatform)
	if !p.dirtySet[ta.disks[0].path] || !ta.spoolFull {
		t.Fatalf("spool of %d bytes full, but dirty-set-only %v", ta.spoolBytes(), p.dirtySet)
	}
	before := len(readsOf(ta.journal(t, 0)))
	ta.rewrite(t, 0, 0, 4096, 0)
	ta.round(t)
	if got := len(readsOf(ta.journal(t, 0))); got != before {
		t.Fatalf("%d reads journaled with the spool full", got-before)
	}
	ta.cfg.SpoolBytes = 1 << 30
	ta.round(t)
	if p.dirtySet[ta.disks[0].path] || ta.spoolFull {
		t.Fatal("the spool has room but the tracker keeps only the dirty set")
	}
	if got := readsOf(ta.journal(t, 0)); !slices.Equal(got[len(got)-1:], [][2]int64{{0, 4096}}) {
		t.Fatalf("reads %v: the backlog was not read once the spool had room", got)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
