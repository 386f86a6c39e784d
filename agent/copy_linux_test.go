//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

const copyTestSize = 8 << 20

// copyTestAgent returns an agent with one disk "d" backed by a file of
// copyTestSize bytes (random data, with zero holes), journaling into a
// spool directory, and the file's content.
func copyTestAgent(t *testing.T) (*Agent, *disk, []byte) {
	t.Helper()
	dir := t.TempDir()
	content := make([]byte, copyTestSize)
	rand.New(rand.NewSource(1)).Read(content)
	for _, hole := range [][2]int{{1 << 20, 256 << 10}, {3<<20 + 64<<10, 64 << 10}, {6 << 20, 2 << 20}} {
		clear(content[hole[0] : hole[0]+hole[1]])
	}
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil { // a file system without O_DIRECT: alignment is still checked
		f, err = os.Open(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o700)
	w, err := hrlfmt.NewWriter(hrlfmt.WriterOptions{Dir: spool, Machine: "m", Disk: "d", DiskSize: copyTestSize, MaxSegmentBytes: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d := &disk{name: "d", path: path, size: copyTestSize, state: StateProtected, w: w, spoolDir: spool,
		dev: &blockDev{f: f, path: path, size: copyTestSize, align: 4096}}
	t.Cleanup(func() {
		if d.cp != nil {
			d.cp.close()
		}
	})
	prev := copyParallel
	copyParallel = copySlots // the pipeline's machinery, with every slot
	t.Cleanup(func() { copyParallel = prev })
	a := &Agent{rounds: newRounds([]string{"d"}), readGen: 41}
	return a, d, content
}

// journalRecords seals the journal and returns its DATA and ZERO records
// in journal order.
func journalRecords(t *testing.T, d *disk) []hrlfmt.Record {
	t.Helper()
	if err := d.w.Close(); err != nil {
		t.Fatal(err)
	}
	return spoolRecords(t, d.spoolDir)
}

// heldPread returns a pread that holds back the read at offset hold until
// others other reads have returned, and records the order reads returned in.
func heldPread(hold int64, others int) (func(int, []byte, int64) (int, error), *[]int64) {
	var mu sync.Mutex
	var returned []int64
	rest := make(chan struct{})
	n := 0
	return func(fd int, p []byte, off int64) (int, error) {
		if off == hold {
			select {
			case <-rest:
			case <-time.After(10 * time.Second): // the pipeline serialises: let the test fail, not hang
			}
		}
		k, err := unix.Pread(fd, p, off)
		mu.Lock()
		returned = append(returned, off)
		if off != hold {
			if n++; n == others {
				close(rest)
			}
		}
		mu.Unlock()
		return k, err
	}, &returned
}

// TestCopyRangesOrderAndContent: with reads finishing out of order, the
// records are journaled in the order of the ranges, each chunk's read is
// reported with its own completion time, and the records rebuild exactly
// what was read (zeros as ZERO records).
func TestCopyRangesOrderAndContent(t *testing.T) {
	a, d, content := copyTestAgent(t)
	ranges := []tracker.Range{
		{Off: 0, Len: 3 << 20},              // 3 chunks, the middle one a hole
		{Off: 3<<20 + 5000, Len: 200 << 10}, // unaligned: widened to 4 KiB
		{Off: 5 << 20, Len: 64 << 10},
		{Off: 6<<20 - 128<<10, Len: 1 << 20}, // data, then a hole
		{Off: copyTestSize - 4096, Len: 4096},
	}
	cs := chunks(d.dev, d.size, ranges, false)
	if len(cs) != 7 {
		t.Fatalf("%d chunks, want 7: %v", len(cs), cs)
	}
	// The first chunk's read returns only after three others: they must
	// be in flight at once, and be journaled after it all the same.
	hooked, returned := heldPread(0, 3)
	pread = hooked
	t.Cleanup(func() { pread = unix.Pread })

	start := monotonicNow()
	if err := a.copyRanges(context.Background(), d, ranges); err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(*returned, 0); i < 3 {
		t.Fatalf("reads returned in the order %v: the first was not held back (not several reads in flight)", *returned)
	}
	// Every chunk reported read, with a time after it started.
	reads := a.rounds.disks["d"].reads
	if len(reads) != len(cs) {
		t.Fatalf("%d reads reported, want %d", len(reads), len(cs))
	}
	for _, r := range reads {
		if r.done < start {
			t.Errorf("read [%d,%d) reported done at %d, before the copy started (%d)", r.off, r.end, r.done, start)
		}
	}
	recs := journalRecords(t, d)
	img := make([]byte, copyTestSize)
	var last int64 = -1
	for _, rec := range recs {
		if rec.Offset <= last {
			t.Errorf("record at %d after one at %d: not in range order", rec.Offset, last)
		}
		last = rec.Offset
		if rec.Gen != 41 {
			t.Errorf("record at %d of generation %d, want the round's 41", rec.Offset, rec.Gen)
		}
		switch rec.Type {
		case hrlfmt.RecData:
			copy(img[rec.Offset:], rec.Data)
		case hrlfmt.RecZero:
			clear(img[rec.Offset : rec.Offset+rec.Length])
		}
	}
	for _, c := range cs {
		if !bytes.Equal(img[c.off:c.off+c.n], content[c.off:c.off+c.n]) {
			t.Errorf("chunk [%d,+%d): journal differs from the disk", c.off, c.n)
		}
	}
	zeros, data := 0, int64(0)
	for _, rec := range recs {
		if rec.Type == hrlfmt.RecZero {
			zeros++
		} else {
			data += rec.Length
		}
	}
	if zeros < 5 {
		t.Errorf("%d ZERO records, want the holes as ZERO records", zeros)
	}
	if d.sent != data {
		t.Errorf("sent %d bytes, the journal holds %d bytes of DATA", d.sent, data)
	}
}

// TestCopyRangesReadError: a read that fails leaves the chunks before it
// journaled and everything from it on pending, and the error is returned.
func TestCopyRangesReadError(t *testing.T) {
	a, d, _ := copyTestAgent(t)
	ranges := []tracker.Range{{Off: 0, Len: 4 << 20}, {Off: 5 << 20, Len: 1 << 20}}
	bad := int64(2 << 20)
	pread = func(fd int, p []byte, off int64) (int, error) {
		if off == bad {
			return 0, syscall.EIO
		}
		return unix.Pread(fd, p, off)
	}
	t.Cleanup(func() { pread = unix.Pread })
	err := a.copyRanges(context.Background(), d, ranges)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("copyRanges = %v, want the read error", err)
	}
	var pend tracker.Set
	for _, rg := range a.rounds.PendingRanges("d") {
		pend.Add(rg.Off, rg.Len)
	}
	// Reads reported but not journaled count in PendingRanges too; what
	// matters is that nothing from the failed chunk on is lost.
	for _, want := range []tracker.Range{{Off: bad, Len: 2 << 20}, {Off: 5 << 20, Len: 1 << 20}} {
		if !covers(a.rounds.disks["d"].pending, want) {
			t.Errorf("[%d,+%d) not pending after the failed read; pending %v", want.Off, want.Len, a.rounds.disks["d"].pending.Ranges())
		}
	}
	journaled := map[int64]bool{}
	for _, rec := range journalRecords(t, d) {
		journaled[rec.Offset] = true
		if rec.Offset >= bad {
			t.Errorf("record at %d journaled, at or after the failed read", rec.Offset)
		}
	}
	if !journaled[0] {
		t.Error("the chunk before the failed read was not journaled")
	}
	// All slots are back for the next round.
	if n := len(d.cp.free); n != copySlots {
		t.Errorf("%d of %d slots free after the round", n, copySlots)
	}
}

// covers reports whether s holds all of rg.
func covers(s tracker.Set, rg tracker.Range) bool {
	for _, r := range s.Ranges() {
		if r.Off <= rg.Off && r.End() >= rg.End() {
			return true
		}
	}
	return false
}

// TestCopyRangesCancel: a round stopped by its context gives back what it
// did not journal.
func TestCopyRangesCancel(t *testing.T) {
	a, d, _ := copyTestAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	pread = func(fd int, p []byte, off int64) (int, error) {
		if off >= 1<<20 {
			once.Do(cancel)
		}
		return unix.Pread(fd, p, off)
	}
	t.Cleanup(func() { pread = unix.Pread })
	err := a.copyRanges(ctx, d, []tracker.Range{{Off: 0, Len: copyTestSize}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("copyRanges = %v, want context.Canceled", err)
	}
	var journaledEnd int64
	for _, rec := range journalRecords(t, d) {
		journaledEnd = max(journaledEnd, rec.Offset+rec.Length)
	}
	if !covers(a.rounds.disks["d"].pending, tracker.Range{Off: journaledEnd, Len: copyTestSize - journaledEnd}) {
		t.Errorf("journaled up to %d, but pending is %v", journaledEnd, a.rounds.disks["d"].pending.Ranges())
	}
}

// TestCopyRangesInFlight: small chunks get many reads in flight at once
// (each read here waits until all slots are busy), and the bytes in flight never
// exceed copyBytes, also when large chunks come.
func TestCopyRangesInFlight(t *testing.T) {
	a, d, content := copyTestAgent(t)
	var ranges []tracker.Range
	for off := int64(0); off < 4<<20; off += 128 << 10 {
		ranges = append(ranges, tracker.Range{Off: off, Len: 64 << 10}) // 32 small chunks
	}
	ranges = append(ranges, tracker.Range{Off: 4 << 20, Len: 4 << 20}) // 4 chunks of 1 MiB
	const want = copySlots
	var mu sync.Mutex
	var inFlight, bytesInFlight, maxBytes, most int
	gathered := make(chan struct{})
	pread = func(fd int, p []byte, off int64) (int, error) {
		mu.Lock()
		inFlight++
		bytesInFlight += len(p)
		maxBytes = max(maxBytes, bytesInFlight)
		if inFlight == want && most < want {
			close(gathered) // once: later reads may bring it to want again
		}
		most = max(most, inFlight)
		mu.Unlock()
		if off < 4<<20 {
			select {
			case <-gathered:
			case <-time.After(10 * time.Second): // let the test fail, not hang
			}
		}
		k, err := unix.Pread(fd, p, off)
		mu.Lock()
		inFlight--
		bytesInFlight -= len(p)
		mu.Unlock()
		return k, err
	}
	t.Cleanup(func() { pread = unix.Pread })
	if err := a.copyRanges(context.Background(), d, ranges); err != nil {
		t.Fatal(err)
	}
	if most < want {
		t.Errorf("at most %d reads in flight, want %d", most, want)
	}
	if maxBytes > copyBytes {
		t.Errorf("%d bytes in flight, more than %d", maxBytes, copyBytes)
	}
	img := make([]byte, copyTestSize)
	for _, rec := range journalRecords(t, d) {
		if rec.Type == hrlfmt.RecData {
			copy(img[rec.Offset:], rec.Data)
		}
	}
	for _, rg := range ranges {
		if !bytes.Equal(img[rg.Off:rg.End()], content[rg.Off:rg.End()]) {
			t.Errorf("range [%d,+%d): journal differs from the disk", rg.Off, rg.Len)
		}
	}
}

// TestCopierKeepsFewBigSlots: after rounds of large and small chunks with
// reads finishing in every order, at most maxBig slots keep the memory of
// a large chunk.
func TestCopierKeepsFewBigSlots(t *testing.T) {
	a, d, _ := copyTestAgent(t)
	var ranges []tracker.Range
	for off := int64(0); off < copyTestSize; off += 512 << 10 {
		if off%(1<<20) == 0 {
			ranges = append(ranges, tracker.Range{Off: off, Len: 448 << 10}) // big: > bigChunk
		} else {
			ranges = append(ranges, tracker.Range{Off: off, Len: 64 << 10})
		}
	}
	for range 3 {
		if err := a.copyRanges(context.Background(), d, ranges); err != nil {
			t.Fatal(err)
		}
	}
	held := 0
	for _, s := range d.cp.all {
		if s.batch.Retained() > bigChunk {
			held++
			if !s.big {
				t.Errorf("a slot not marked big holds %d bytes", s.batch.Retained())
			}
		}
	}
	if held == 0 || held > maxBig || d.cp.big > maxBig {
		t.Errorf("%d slots hold a big chunk's memory (%d marked big), want 1 to %d", held, d.cp.big, maxBig)
	}
}

// TestWaitObserved: a round may begin only once the consumer has passed
// on the cut event of the generation before it (and so every change ahead
// of it).
func TestWaitObserved(t *testing.T) {
	a := &Agent{rounds: newRounds([]string{"d"})}
	a.cutSeen = 5 // the cut event of generation 4 was processed
	if err := a.waitObserved(context.Background(), 5); err != nil {
		t.Fatalf("cut 5, events up to generation 4 observed: %v", err)
	}
	returned := make(chan error, 1)
	go func() { returned <- a.waitObserved(context.Background(), 6) }()
	select {
	case err := <-returned:
		t.Fatalf("returned (%v) before the cut event of generation 5 was observed", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.mu.Lock()
	a.cutSeen = 6
	a.mu.Unlock()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the cut event was observed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.waitObserved(ctx, 7); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
}
