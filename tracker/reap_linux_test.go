//go:build linux

package tracker

import (
	"context"
	"math/bits"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	lbbpf "github.com/lifeboat-dr/lifeboat/bpf"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestReapLostCompletion: an in-flight entry whose completion the program
// never saw (injected here, as the lost completion seen in CI left one)
// holds every later cut back; ReapLost forgets it once the disk shows
// nothing in flight, and only then.
func TestReapLostCompletion(t *testing.T) {
	tr, loop, cut := reapRig(t)
	gen := cut()

	// Inject a request of generation gen that never completes: an entry
	// in its free slot of the direct-mapped table, counted in flight.
	major, minor := loop.Dev()
	key, id := uint64(0xffff_8880_dead_b000), uint64(0x7777_0001)
	inject(t, tr, lbbpf.TrackerLbInflight{Key: key, Id: id, Gen: gen, Sector: 64, Bytes: 4096, Dev: kdev(major, minor), Pending: 1, Op: 1})
	if ok, err := tr.Completed(gen); err != nil || ok {
		t.Fatalf("with a lost completion injected: completed %v, %v; want false", ok, err)
	}
	ws, err := tr.InFlightWrites(gen)
	if err != nil || len(ws) != 1 || ws[0].Key != key || ws[0].Gen != gen || ws[0].Bytes != 4096 {
		t.Fatalf("in-flight writes: %+v, %v; want the injected one", ws, err)
	}

	// A disk that shows a request in flight keeps its entries.
	tr.inFlightOf = func(uint32) (int64, error) { return 1, nil }
	if r, err := tr.ReapLost(gen); err != nil || len(r) != 0 {
		t.Fatalf("reap with the disk busy: %+v, %v; want nothing reaped", r, err)
	}
	if ok, _ := tr.Completed(gen); ok {
		t.Fatal("completed after a reap that reaped nothing")
	}

	// Idle (the real sysfs count of the loop device): reaped, completed.
	tr.inFlightOf = nil
	r, err := tr.ReapLost(gen)
	if err != nil || len(r) != 1 || r[0].Key != key || r[0].ID != id {
		t.Fatalf("reap with the disk idle: %+v, %v; want the injected entry", r, err)
	}
	if ok, err := tr.Completed(gen); err != nil || !ok {
		t.Fatalf("after the reap: completed %v, %v; want true", ok, err)
	}
	st, err := tr.Stats()
	if err != nil || st.InFlightReaped != 1 || st.InFlight != 0 {
		t.Fatalf("stats after the reap: reaped %d, in flight %d, %v; want 1, 0", st.InFlightReaped, st.InFlight, err)
	}
	// Reaping again finds nothing, and tracking goes on.
	if r, err := tr.ReapLost(gen); err != nil || len(r) != 0 {
		t.Fatalf("second reap: %+v, %v", r, err)
	}
	cut()
}

// reapRig opens a tracker protecting a 16 MiB loop device; cut writes a
// block, cuts, waits for the write's completion and returns the
// generation it belonged to.
func reapRig(t *testing.T) (*Linux, *testenv.LoopDevice, func() uint64) {
	t.Helper()
	testenv.RequireBPF(t)
	tr, err := Open(Options{})
	if err != nil {
		t.Fatalf("open tracker: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Detach(); err != nil {
			t.Errorf("detach: %v", err)
		}
	})
	loop := testenv.NewLoop(t, 16<<20)
	if err := tr.Protect(loop.Path); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range tr.Events() {
		}
	}()
	f, err := os.OpenFile(loop.Path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(buf) })
	cut := func() uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := f.WriteAt(buf, 8192); err != nil {
			t.Fatal(err)
		}
		gen, err := tr.Cut(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := WaitCompleted(ctx, tr, gen-1); err != nil {
			t.Fatalf("a write that returned is not counted complete: %v", err)
		}
		return gen - 1
	}
	return tr, loop, cut
}

// inject puts ent into its free slot of the direct-mapped in-flight
// table, and counts it in flight for its generation if it is a root.
func inject(t *testing.T, tr *Linux, ent lbbpf.TrackerLbInflight) {
	t.Helper()
	slot := uint32((ent.Key * 0x9E3779B97F4A7C15) >> (64 - bits.TrailingZeros(uint(tr.opts.InflightSlots))))
	var cur lbbpf.TrackerLbInflight
	if err := tr.maps.InflightFast.Lookup(slot, &cur); err != nil || cur.Key != 0 {
		t.Fatalf("slot %d of the in-flight table: %+v, %v; want free", slot, cur, err)
	}
	if err := tr.maps.InflightFast.Update(slot, &ent, 0); err != nil {
		t.Fatal(err)
	}
	if ent.Root != 0 {
		return
	}
	var per []uint64
	if err := tr.maps.GenInflight.Lookup(uint32(ent.Gen%genSlots), &per); err != nil {
		t.Fatal(err)
	}
	per[0]++
	if err := tr.maps.GenInflight.Update(uint32(ent.Gen%genSlots), per, 0); err != nil {
		t.Fatal(err)
	}
}

// TestReapLostSplitCompletion: the state a CI run left (e2e
// TestStreamWritesNoDatastream, 2026-12-08): a 1 MiB write split in two,
// neither piece's completion seen, the disk idle. The split piece has no
// device of its own; ReapLost used to ask sysfs for device 0:0, fail, and
// reap nothing, so every later round failed for ever. Both entries are
// forgotten now, and the generation completes.
func TestReapLostSplitCompletion(t *testing.T) {
	tr, loop, cut := reapRig(t)
	gen := cut()
	major, minor := loop.Dev()
	root, piece, id := uint64(0xffff_c900_0140_bbd8), uint64(0xffff_8881_2719_a080), uint64(0x2000)
	inject(t, tr, lbbpf.TrackerLbInflight{Key: root, Id: id, Gen: gen, Sector: 43008, Bytes: 1 << 20, Dev: kdev(major, minor), Pending: 2, Op: 1})
	inject(t, tr, lbbpf.TrackerLbInflight{Key: piece, Id: id, Root: root})
	if ok, err := tr.Completed(gen); err != nil || ok {
		t.Fatalf("with a lost split completion injected: completed %v, %v; want false", ok, err)
	}
	r, err := tr.ReapLost(gen)
	if err != nil || len(r) != 2 || r[0].Key != root || r[1].Key != piece {
		t.Fatalf("reap with the disk idle: %+v, %v; want the root, then its piece", r, err)
	}
	if ok, err := tr.Completed(gen); err != nil || !ok {
		t.Fatalf("after the reap: completed %v, %v; want true", ok, err)
	}
	if ws, err := tr.InFlightWrites(gen + 1); err != nil || len(ws) != 0 {
		t.Fatalf("in-flight entries after the reap: %+v, %v; want none", ws, err)
	}
	cut()
}
