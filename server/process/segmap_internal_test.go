package process

import (
	"os"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/store"
)

// The maps' budget is given back whatever becomes of a map: taken, dropped
// with older ones, dropped when the applier stops, refused when over the
// budget or when target storage cannot use maps.
func TestMapBudgetAccounting(t *testing.T) {
	l, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &Role{store: l}
	d := &diskState{p: s, dir: t.TempDir(), maps: map[uint64]segMap{}}
	keep := func(seq uint64, n int) bool {
		t.Helper()
		path := d.segPath(seq)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		m := &hrlfmt.Map{Records: make([]hrlfmt.Record, n)}
		ok := d.reserveMap(m)
		d.mu.Lock()
		d.keepMap(seq, segMap{m: m, fi: fi}, ok)
		d.mu.Unlock()
		return ok
	}
	want := func(n int64) {
		t.Helper()
		if got := s.mapRecords.Load(); got != n {
			t.Fatalf("budget holds %d records, want %d", got, n)
		}
	}
	for seq := range uint64(3) {
		if !keep(seq, 10) {
			t.Fatalf("map %d refused", seq)
		}
	}
	want(30)
	if m := d.takeMap(1); m == nil || len(m.Records) != 10 {
		t.Fatalf("takeMap(1) = %v", m)
	}
	want(10) // maps 0 and 1 gone
	if m := d.takeMap(0); m != nil {
		t.Fatal("map 0 still there")
	}
	// A replaced file is not the one the map was made of, even if it got
	// the freed inode number (the file system's clock may not have moved:
	// its time is set apart here).
	fi, _ := os.Stat(d.segPath(2))
	os.Remove(d.segPath(2))
	os.WriteFile(d.segPath(2), []byte("x"), 0o600)
	os.Chtimes(d.segPath(2), time.Time{}, fi.ModTime().Add(time.Second))
	if m := d.takeMap(2); m != nil {
		t.Fatal("map of a replaced file returned")
	}
	want(0)
	if keep(3, mapBudget+1) {
		t.Fatal("map over the budget kept")
	}
	want(0)
	keep(4, 5)
	want(5)
	d.dropMaps()
	want(0)
	if keep(5, 5); len(d.maps) != 0 {
		t.Fatal("map kept after the applier stopped")
	}
	want(0)

	// Target storage that cannot use a map gets none.
	s2 := &Role{store: struct{ store.Store }{l}}
	d2 := &diskState{p: s2, dir: t.TempDir(), maps: map[uint64]segMap{}}
	if d2.reserveMap(&hrlfmt.Map{Records: make([]hrlfmt.Record, 1)}) {
		t.Error("map reserved for a store without ApplyMapped")
	}
	if s2.mapRecords.Load() != 0 {
		t.Error("budget taken for a store without ApplyMapped")
	}
}
