package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// withDefaults returns r with its zero fields set from DefaultRetention.
// A negative duration is an error; a KeepAll longer than Window extends
// the window to KeepAll (every point within KeepAll is kept).
func (r Retention) withDefaults() (Retention, error) {
	if r.Window < 0 || r.KeepAll < 0 || r.Thin < 0 {
		return r, fmt.Errorf("retention %+v: negative duration", r)
	}
	if r.Window == 0 {
		r.Window = DefaultRetention.Window
	}
	if r.KeepAll == 0 {
		r.KeepAll = DefaultRetention.KeepAll
	}
	if r.Thin == 0 {
		r.Thin = DefaultRetention.Thin
	}
	r.Window = max(r.Window, r.KeepAll)
	return r, nil
}

// retained applies the retention rule to points listed oldest first (as
// Points lists them) as of now, with r's fields all set, and reports which
// it keeps. With age = now − point time:
//
//   - the last point listed (the newest) is kept, whatever its age;
//   - a point with age ≤ KeepAll is kept (a point from the future too);
//   - a point with age > Window is not;
//   - a point in between is kept if it is the newest point of its Thin
//     bucket: buckets are the intervals [k·Thin, (k+1)·Thin) of time since
//     the Unix epoch (so with Thin = 1 h, whole UTC hours), and the newest
//     point of a bucket is the one with the latest time among all listed
//     points in it, whatever their age (the later listed on a tie). A
//     bucket that reaches into the KeepAll span thus keeps only its points
//     there, and once it has aged out of that span, exactly its newest.
//
// Buckets are fixed in time, not relative to now, so the point a bucket
// keeps does not change from one Prune to the next.
func retained(pts []Point, r Retention, now time.Time) []bool {
	keep := make([]bool, len(pts))
	thin := r.Thin.Nanoseconds()
	bucket := func(t time.Time) int64 {
		n := t.UnixNano()
		q := n / thin
		if n%thin < 0 {
			q--
		}
		return q
	}
	newest := make(map[int64]int)
	for i, p := range pts {
		b := bucket(p.Time)
		if j, ok := newest[b]; !ok || !p.Time.Before(pts[j].Time) {
			newest[b] = i
		}
	}
	for i, p := range pts {
		age := now.Sub(p.Time)
		switch {
		case i == len(pts)-1, age <= r.KeepAll:
			keep[i] = true
		case age > r.Window:
		default:
			keep[i] = newest[bucket(p.Time)] == i
		}
	}
	return keep
}

// Prune applies the retention policy r (zero fields: DefaultRetention's)
// to a machine's points as of now, then folds into each disk's base the
// journal segments that no kept point needs any more (see the package
// documentation). A point once dropped is never materializable again. It
// is safe to run while segments are applied and points materialized; one
// Prune of a machine runs at a time. After an error or a crash, Prune
// again finishes the work.
func (l *Local) Prune(ctx context.Context, machine string, r Retention, now time.Time) (PruneResult, error) {
	if err := l.checkMachine(machine); err != nil {
		return PruneResult{}, fmt.Errorf("prune: %w", err)
	}
	r, err := r.withDefaults()
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune: %w", err)
	}
	mu := l.pruneLock(machine)
	mu.Lock()
	defer mu.Unlock()
	res, err := l.prune(ctx, machine, r, now)
	if err != nil {
		return res, fmt.Errorf("prune %s: %w", machine, err)
	}
	return res, nil
}

// PrunePlan is what a Prune does to a machine's journals, decided from its
// points before anything changes (PlanPrune).
type PrunePlan struct {
	// Listed, Drop and Forget are sets of point ids: listed now; to mark
	// dropped (never materializable again); to forget (older than the
	// window: their cuts leave the cut lists).
	Listed, Drop, Forget map[string]bool
	// Kept are the ids of the points kept materializable.
	Kept []string
	// Until is, per disk, the segment of the oldest kept cut: every
	// segment before it is folded into the base. Meaningless when Kept is
	// empty (then nothing is folded).
	Until map[string]uint64
	// Disks is the machine's disk set.
	Disks []string
	// Dropped lists the points no longer materializable after this prune.
	Dropped []string
}

// PlanPrune applies the retention policy r (zero fields: DefaultRetention's)
// to the points of a machine and their cuts on each disk (as ListPoints
// gives them) as of now. It is the part of Prune every backend shares.
func PlanPrune(pts []Point, cuts map[string]map[string]Cut, r Retention, now time.Time) (PrunePlan, error) {
	r, err := r.withDefaults()
	if err != nil {
		return PrunePlan{}, err
	}
	plan := PrunePlan{Listed: make(map[string]bool, len(pts)), Drop: make(map[string]bool), Forget: make(map[string]bool)}
	if len(pts) == 0 {
		return plan, nil
	}
	keep := retained(pts, r, now)
	for i, p := range pts {
		plan.Listed[p.ID] = true
		if keep[i] && p.Materializable {
			plan.Kept = append(plan.Kept, p.ID)
			continue
		}
		// Marked on every disk, also where an interrupted Prune did not.
		plan.Drop[p.ID] = true
		if p.Materializable {
			plan.Dropped = append(plan.Dropped, p.ID)
		}
		if now.Sub(p.Time) > r.Window {
			plan.Forget[p.ID] = true
		}
	}
	plan.Disks = pts[0].Disks
	// Where each disk's merge stops: at the segment of its oldest kept cut.
	// Without a kept point (the newest was dropped by an earlier Prune and
	// no point came since), nothing is merged.
	plan.Until = make(map[string]uint64, len(plan.Disks))
	for _, d := range plan.Disks {
		for i, id := range plan.Kept {
			if c := cuts[d][id]; i == 0 || c.Seq < plan.Until[d] {
				plan.Until[d] = c.Seq
			}
		}
	}
	return plan, nil
}

// MarkCuts returns a disk's cut list as a Prune leaves it: the cuts of the
// points in plan.Drop marked dropped, those in plan.Forget removed, and,
// below segment until (where the merge stops), the cuts of points never
// listed and the pending notes, whose segments the merge folds into the
// base. changed is false when nothing changes.
func MarkCuts(m CutList, plan PrunePlan, until uint64) (CutList, bool) {
	changed := false
	cuts := m.Cuts[:0:0]
	for _, c := range m.Cuts {
		switch {
		case plan.Forget[c.ID], !plan.Listed[c.ID] && c.Seq < until:
			changed = true
			continue
		case plan.Drop[c.ID] && !c.Dropped:
			c.Dropped = true
			changed = true
		}
		cuts = append(cuts, c)
	}
	notes := m.Notes[:0:0]
	for _, n := range m.Notes {
		if n.Seq < until {
			changed = true
			continue
		}
		notes = append(notes, n)
	}
	m.Cuts, m.Notes = cuts, notes
	return m, changed
}

func (l *Local) prune(ctx context.Context, machine string, r Retention, now time.Time) (PruneResult, error) {
	var res PruneResult
	pts, cuts, err := l.points(machine)
	if err != nil || len(pts) == 0 {
		return res, err
	}
	plan, err := PlanPrune(pts, cuts, r, now)
	if err != nil {
		return res, err
	}
	res.Dropped = plan.Dropped
	disks, until, kept := plan.Disks, plan.Until, plan.Kept
	// The drops are durable on every disk before anything is merged.
	for _, d := range disks {
		if err := l.markCuts(machine, d, plan, until[d]); err != nil {
			return res, err
		}
		if err := l.runHook("prune marked " + d); err != nil {
			return res, err
		}
	}
	if len(kept) == 0 {
		return res, nil
	}
	for _, d := range disks {
		for {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			done, err := l.mergeNext(ctx, machine, d, until[d], &res)
			if err != nil {
				return res, fmt.Errorf("merge disk %s: %w", d, err)
			}
			if done {
				break
			}
		}
	}
	return res, nil
}

// markCuts updates cuts.json of a disk for a Prune (MarkCuts).
func (l *Local) markCuts(machine, disk string, plan PrunePlan, until uint64) error {
	locks := l.locks(machine, disk)
	locks.apply.Lock()
	defer locks.apply.Unlock()
	dir := l.diskDir(machine, disk)
	m, err := readCutsMeta(dir)
	if err != nil {
		return err
	}
	m, changed := MarkCuts(m, plan, until)
	if !changed {
		return nil
	}
	if err := writeCutsMeta(dir, m); err != nil {
		return fmt.Errorf("disk %s: %w", disk, err)
	}
	return nil
}

// mergeNext folds the first segment of a disk's journal into base.img if
// it lies before segment until, and reports whether there was none to
// fold. Under the disk's journal write lock, so that no Materialize sees
// base.img, the marker and the journal disagree: it writes every record
// of the segment to base.img (after reading and checking all of it) and
// fsyncs it, then moves the base_seq marker past the segment, then
// deletes the segment and its index. A crash before the marker moves
// leaves a base.img holding part or all of the segment, which the journal
// still holds whole: Materialize replays it over the base (its writes are
// absolute, so the result is the same) and the next Prune folds it again.
// A crash after leaves a segment the marker says is merged, which the next
// Prune deletes.
func (l *Local) mergeNext(ctx context.Context, machine, disk string, until uint64, res *PruneResult) (done bool, err error) {
	locks := l.locks(machine, disk)
	locks.journal.Lock()
	defer locks.journal.Unlock()
	dir := l.diskDir(machine, disk)
	jdir := filepath.Join(dir, journalDir)
	first, err := readBaseSeq(dir)
	if err != nil {
		return false, err
	}
	if err := removeMerged(dir, first); err != nil {
		return false, err
	}
	if first >= until {
		return true, nil
	}
	path := filepath.Join(jdir, hrlfmt.SegmentName(first))
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	if err := l.foldSegment(ctx, dir, path, machine, disk, first); err != nil {
		return false, err
	}
	if err := l.runHook(fmt.Sprintf("prune %s base %d", disk, first)); err != nil {
		return false, err
	}
	b, err := json.Marshal(baseState{LastMerged: first})
	if err != nil {
		return false, err
	}
	if err := writeFileAtomic(dir, baseSeqFile, append(b, '\n')); err != nil {
		return false, err
	}
	if err := l.runHook(fmt.Sprintf("prune %s marker %d", disk, first)); err != nil {
		return false, err
	}
	if err := removeMerged(dir, first+1); err != nil {
		return false, err
	}
	res.Merged++
	res.MergedBytes += fi.Size()
	return false, nil
}

// foldSegment writes the records of journal segment seq at path to the
// disk's base.img, in order, and fsyncs it. Every record is checked before
// it is written; a damaged record stops it with part of the segment in
// base.img, which is harmless as after a crash (see mergeNext).
func (l *Local) foldSegment(ctx context.Context, dir, path, machine, disk string, seq uint64) error {
	base, err := os.OpenFile(filepath.Join(dir, baseImg), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open base image: %w", err)
	}
	defer base.Close()
	fi, err := base.Stat()
	if err != nil {
		return fmt.Errorf("base image: %w", err)
	}
	r, err := hrlfmt.OpenSegment(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer r.Close()
	if err := checkHeader(r.Header(), machine, disk, seq); err != nil {
		return fmt.Errorf("journal segment %s: %w", path, err)
	}
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("journal segment %s: %w", path, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := applyDecoded(base, rec, fi.Size()); err != nil {
			return fmt.Errorf("journal segment %s: record %d at offset %d: %w", path, i, rec.Pos, err)
		}
		if l.hook != nil {
			if err := l.runHook(fmt.Sprintf("prune %s fold %d record %d", disk, seq, i)); err != nil {
				return err
			}
		}
	}
	if err := base.Sync(); err != nil {
		return fmt.Errorf("sync base image: %w", err)
	}
	return nil
}

// removeMerged removes, from the journal of the disk in dir, the segments
// before first and their indexes (merged into the base: what a crash
// between the marker and the deletion leaves), and the temporary files of
// an interrupted marker write.
func removeMerged(dir string, first uint64) error {
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "."+baseSeqFile+".tmp-") {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	jdir := filepath.Join(dir, journalDir)
	ents, err := os.ReadDir(jdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list journal: %w", err)
	}
	removed := false
	for _, e := range ents {
		name := e.Name()
		seq, ok := hrlfmt.ParseSegmentName(name)
		if !ok && strings.HasSuffix(name, indexExt) {
			seq, ok = hrlfmt.ParseSegmentName(strings.TrimSuffix(name, indexExt) + ".hrl")
		}
		if !ok || seq >= first {
			continue
		}
		if err := os.Remove(filepath.Join(jdir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove merged segment: %w", err)
		}
		removed = true
	}
	if removed {
		return syncDir(jdir)
	}
	return nil
}
