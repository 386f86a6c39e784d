package store

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// TestPointNotes checks that the NOTE records of a journal reach the
// points: Freeze and Note come from the first disk by name that has a
// note for the point, also when a segment ends between the NOTE and its
// CUT; a point without a note has none; every point is materializable.
func TestPointNotes(t *testing.T) {
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	note := func(id, text string, ms int) *hrlfmt.Note {
		return &hrlfmt.Note{PointID: id, Freeze: time.Duration(ms) * time.Millisecond, Text: text}
	}
	// On sda: a note for app1 and app3; on sdb: for app1, app2 and app3.
	sda := []tpoint{
		{id: "crash0", time: at(0), kind: hrlfmt.CutCrash},
		{id: "app1", time: at(1), kind: hrlfmt.CutApp, note: note("app1", `{"disk":"sda"}`, 12)},
		{id: "app2", time: at(2), kind: hrlfmt.CutApp},
		{id: "app3", time: at(3), kind: hrlfmt.CutApp, note: note("app3", "", 0)},
		{id: "crash4", time: at(4), kind: hrlfmt.CutCrash},
	}
	sdb := []tpoint{
		sda[0],
		{id: "app1", time: at(1), kind: hrlfmt.CutApp, note: note("app1", `{"disk":"sdb"}`, 99)},
		{id: "app2", time: at(2), kind: hrlfmt.CutApp, note: note("app2", `{"scripts":[{"name":"pre","exit":0}],"fs":["/"]}`, 7)},
		{id: "app3", time: at(3), kind: hrlfmt.CutApp, note: note("app3", "sdb's", 5)},
		sda[4],
	}
	want := map[string]struct {
		freeze time.Duration
		text   string
	}{
		"crash0": {},
		"app1":   {12 * time.Millisecond, `{"disk":"sda"}`},
		"app2":   {7 * time.Millisecond, `{"scripts":[{"name":"pre","exit":0}],"fs":["/"]}`},
		"app3":   {0, ""}, // sda's note, empty
		"crash4": {},
	}
	for _, split := range []bool{false, true} {
		o := planOpts{maxWrites: 2, maxLen: 4096, zeroProb: 0.1, splitNote: split}
		if split {
			o.flushProb = 1 // a segment ends after every record: between each NOTE and its CUT too
		}
		rng := rand.New(rand.NewPCG(1, 1))
		plans := []*timedPlan{planTimed(rng, "sda", 64<<10, sda, o), planTimed(rng, "sdb", 64<<10, sdb, o)}
		dir := t.TempDir()
		for _, p := range plans {
			writeTimed(t, dir, p)
		}
		if split {
			// The NOTE of app1 on sdb ends a segment of its own.
			r, err := hrlfmt.VerifySegment(plans[1].paths[plans[1].cutSeq["app1"]-1])
			if err != nil || len(r.Notes) != 1 || len(r.Cuts) != 0 {
				t.Fatalf("split plan: the segment before app1's cut: %+v, %v", r, err)
			}
		}
		l := openTest(t, t.TempDir())
		if err := l.SetDisks(ctx, testMachine, []DiskInfo{{Name: "sda"}, {Name: "sdb"}}); err != nil {
			t.Fatal(err)
		}
		applyUpTo(t, l, plans, map[string]int{}, map[string]int{"sda": 1 << 30, "sdb": 1 << 30})
		pts, err := l.Points(ctx, testMachine)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != len(want) {
			t.Fatalf("split %v: %d points, want %d", split, len(pts), len(want))
		}
		for _, p := range pts {
			w := want[p.ID]
			if p.Freeze != w.freeze || p.Note != w.text || !p.Materializable {
				t.Errorf("split %v: point %s: freeze %v, note %q, materializable %v; want %v, %q, true", split, p.ID, p.Freeze, p.Note, p.Materializable, w.freeze, w.text)
			}
		}
		b, _ := json.Marshal(pts[1])
		if !strings.Contains(string(b), `"freeze_ns":12000000`) || !strings.Contains(string(b), `"note":"{\"disk\":\"sda\"}"`) || !strings.Contains(string(b), `"materializable":true`) {
			t.Errorf("point as JSON: %s", b)
		}
		// Nothing is left pending once every cut has its note.
		for _, d := range []string{"sda", "sdb"} {
			m, err := readCutsMeta(l.diskDir(testMachine, d))
			if err != nil || len(m.Notes) != 0 {
				t.Errorf("split %v: disk %s: pending notes %+v, %v", split, d, m.Notes, err)
			}
		}
		checkMaterialize(t, l, plans)
	}
}
