package agent

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

func TestRoundsQuietDiskGivesPoints(t *testing.T) {
	r := newRounds([]string{"a"})
	if clean, _, _ := r.Begin(1); clean {
		t.Fatal("first round cannot be clean: nothing was validated")
	}
	r.Done()
	clean, gen, _ := r.Begin(2)
	if !clean || gen != 0 {
		t.Fatalf("Begin(2) = %v, %d; want clean point of generation 0", clean, gen)
	}
}

func TestRoundsTaint(t *testing.T) {
	r := newRounds([]string{"a"})
	r.Observe("a", 0, 8192, 0, 1)
	r.Begin(1) // folds generation 0
	got := r.Take("a", 1<<20)
	if len(got) != 1 || got[0].Off != 0 || got[0].Len != 8192 {
		t.Fatalf("Take = %v", got)
	}
	r.ReadDone("a", 0, 4096, 10)
	r.ReadDone("a", 4096, 4096, 30)
	r.Observe("a", 512, 512, 1, 5)   // queued before its block was read: taints
	r.Observe("a", 1024, 512, 1, 20) // queued after its block was read: no taint
	r.Observe("a", 4096, 512, 1, 20) // before the second block was read: taints
	r.Observe("a", 65536, 512, 1, 2) // elsewhere: pending, no taint
	r.Done()
	clean, _, tainted := r.Begin(2)
	if clean || tainted != 1024 {
		t.Fatalf("Begin(2) = clean %v, tainted %d; want a tainted round of 1024 bytes", clean, tainted)
	}
	if p := r.Pending("a"); p != 4*512 {
		t.Fatalf("pending %d bytes, want the four later writes (2048)", p)
	}
	for _, rg := range r.Take("a", 1<<20) {
		r.ReadDone("a", rg.Off, rg.Len, 100)
	}
	r.Done()
	clean, gen, _ := r.Begin(3)
	if !clean || gen != 1 {
		t.Fatalf("Begin(3) = %v, %d; want a clean point of generation 1", clean, gen)
	}
}

func TestRoundsLateWriteDoesNotTaint(t *testing.T) {
	r := newRounds([]string{"a"})
	r.Observe("a", 0, 4096, 0, 1)
	r.Begin(1)
	r.Take("a", 1<<20)
	r.ReadDone("a", 0, 4096, 10)
	r.Observe("a", 0, 4096, 1, 11) // after the read: the point of gen 0 stands
	r.Done()
	if clean, gen, _ := r.Begin(2); !clean || gen != 0 {
		t.Fatalf("Begin(2) = %v, %d; a write queued after the read must not taint it", clean, gen)
	}
	// A bitmap region has no time: it always taints what it overlaps.
	r.Take("a", 1<<20)
	r.ReadDone("a", 0, 4096, 50)
	r.Observe("a", 0, 65536, 2, 0)
	r.Done()
	if clean, _, _ := r.Begin(3); clean {
		t.Fatal("a bitmap region without time did not taint an overlapping read")
	}
}

func TestRoundsLeftoverIsNotClean(t *testing.T) {
	r := newRounds([]string{"a", "b"})
	r.MarkPending("a", 0, 1<<20)
	r.Begin(1)
	for _, rg := range r.Take("a", 1<<19) {
		r.ReadDone("a", rg.Off, rg.Len, 1)
	}
	r.Done()
	if clean, _, _ := r.Begin(2); clean {
		t.Fatal("a round that left half the disk unread was clean")
	}
	for _, rg := range r.Take("a", 1<<19) {
		r.ReadDone("a", rg.Off, rg.Len, 2)
	}
	r.Done()
	if clean, _, _ := r.Begin(3); !clean {
		t.Fatal("the round that read the rest was not clean")
	}
}

// TestRoundsModel runs the cut logic against a simulated disk whose writes
// land in the middle of the agent's reads, and checks that every point the
// logic calls clean replays to exactly the disk as it was at that cut.
func TestRoundsModel(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		simulate(t, seed)
	}
}

type simRecord struct {
	block int
	val   uint64 // 0 with point >= 0: a cut marker
	point int64  // -1 for data
}

func simulate(t *testing.T, seed int64) {
	const blocks, bs = 48, 4096
	rng := rand.New(rand.NewSource(seed))
	disk := make([]uint64, blocks)
	var journal []simRecord
	snapshots := map[uint64][]uint64{} // disk at the cut that ended generation g
	gen := uint64(0)
	next := uint64(1)
	clock := int64(1) // advances with every write and every block read
	r := newRounds([]string{"d"})
	r.MarkPending("d", 0, blocks*bs) // initial sync
	write := func() {
		b := rng.Intn(blocks)
		disk[b] = next
		next++
		clock++
		r.Observe("d", int64(b)*bs, bs, gen, clock)
	}
	writeRate := rng.Float64() * 0.6
	points := 0
	for round := 0; round < 60; round++ {
		for rng.Float64() < writeRate {
			write()
		}
		// Cut: generation gen ends, the disk is what it is now.
		snapshots[gen] = slices.Clone(disk)
		gen++
		clean, pg, _ := r.Begin(gen)
		if clean {
			journal = append(journal, simRecord{point: int64(pg)})
			points++
			img := make([]uint64, blocks)
			for _, rec := range journal {
				if rec.point < 0 {
					img[rec.block] = rec.val
				}
			}
			if want := snapshots[pg]; !slices.Equal(img, want) {
				t.Fatalf("seed %d: point of generation %d replays to %v, disk at the cut was %v", seed, pg, img, want)
			}
		}
		limit := int64(rng.Intn(blocks)+1) * bs
		for _, rg := range r.Take("d", limit) {
			for off := rg.Off; off < rg.End(); off += bs {
				if rng.Float64() < writeRate {
					write() // lands while the agent reads
				}
				journal = append(journal, simRecord{block: int(off / bs), val: disk[off/bs], point: -1})
				clock++
				r.ReadDone("d", off, bs, clock)
			}
		}
		r.Done()
	}
	if writeRate < 0.2 && points == 0 {
		t.Fatalf("seed %d: no point in 60 rounds at a write rate of %.2f", seed, writeRate)
	}
}

// TestRoundsSweepDoesNotStarveHighOffsets: under a standing backlog (new
// changes at low offsets every round, more pending than a round reads), a
// change at a high offset must still be read within one sweep, and Oldest
// must move on once the change it stood for has been taken.
func TestRoundsSweepDoesNotStarveHighOffsets(t *testing.T) {
	r := newRounds([]string{"a"})
	const block = 64 << 10
	// Generation 0: 64 changes across the first 64 MiB, the last one at
	// the highest offset, queued at time 1..64.
	for i := int64(0); i < 64; i++ {
		r.Observe("a", i<<20, block, 0, i+1)
	}
	r.Begin(1)
	high := int64(63 << 20)
	takenIn, movedIn := uint64(0), uint64(0)
	for round := uint64(1); round <= 40; round++ {
		o := r.Oldest("a")
		if o == 0 {
			t.Fatalf("round %d: Oldest = 0 with changes pending", round)
		}
		if o >= 1000 && movedIn == 0 {
			movedIn = round
		}
		// A round reads 8 blocks, fewer than are pending.
		for _, rg := range r.Take("a", 8*block) {
			if rg.Off <= high && high < rg.End() && takenIn == 0 {
				takenIn = round
			}
			r.ReadDone("a", rg.Off, rg.Len, int64(round)*1000)
		}
		// Meanwhile more than a round reads changes again at the lowest
		// offsets: the backlog never drains.
		for i := int64(0); i < 9; i++ {
			r.Observe("a", i*block, block, round, int64(round)*1000+i)
		}
		r.Done()
		r.Begin(round + 1)
	}
	if takenIn == 0 || takenIn > 20 {
		t.Fatalf("the change at the highest offset was read in round %d (0: never), want within 20: low offsets starve it", takenIn)
	}
	// Once the sweep that took it wraps, Oldest is no older than what came
	// during the sweep (times >= 1000), not the first change (time 1).
	if movedIn == 0 {
		t.Fatalf("Oldest stayed %d for 40 rounds after the change it stood for was read: the lag would keep growing", r.Oldest("a"))
	}
}

// mergeRanges must give what tracker.Set gives for the same ranges
// (sorted, merged where they overlap or touch), whatever their order:
// the crash log persists it as the pending set.
func TestMergeRangesAsSet(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	for i := range 200 {
		var rs []tracker.Range
		var s tracker.Set
		for range rng.Intn(300) {
			off := rng.Int63n(1 << 20)
			n := rng.Int63n(4096) + 1
			if rng.Intn(4) == 0 && len(rs) > 0 {
				off = rs[rng.Intn(len(rs))].End() // touching
			}
			rs = append(rs, tracker.Range{Off: off, Len: n})
			s.Add(off, n)
		}
		if got, want := mergeRanges(rs), s.Ranges(); !slices.Equal(got, want) {
			t.Fatalf("case %d: mergeRanges = %v, tracker.Set = %v", i, got, want)
		}
	}
	if got := mergeRanges(nil); len(got) != 0 {
		t.Fatalf("mergeRanges(nil) = %v", got)
	}
}
