package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

// cutAt is a crash-consistent cut named id at time at.
func cutAt(id string, at time.Time) hrlfmt.Cut {
	return hrlfmt.Cut{Kind: hrlfmt.CutCrash, PointID: id, Time: at}
}

// putSeg sends segment seq of disk sda of a with one 4 KiB write of fill
// at off 0, the notes and the cuts.
func putSeg(t *testing.T, a *servertest.Agent, seq uint64, fill byte, notes []hrlfmt.Note, cuts ...hrlfmt.Cut) {
	t.Helper()
	sg := servertest.Segment{Machine: a.Name, Disk: "sda", DiskSize: diskSize, Seq: seq, Gen: seq + 1,
		Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{fill}, 4096)}}, Notes: notes, Cuts: cuts}
	mustPut(t, a, "sda", seq, sg.Build(t, t.TempDir()))
}

// TestPointFields: the freeze time and note of an app-consistent point's
// NOTE record, and whether a point is materializable, reach the admin API.
func TestPointFields(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	note := `{"scripts":[{"path":"/etc/lifeboat/pre.sh","exit":0}],"frozen":["/srv"]}`
	putSeg(t, a, 0, 'a', nil, cutAt("c0", time.Now()))
	putSeg(t, a, 1, 'b', []hrlfmt.Note{{PointID: "a1", Freeze: 12500 * time.Microsecond, Text: note}},
		hrlfmt.Cut{Kind: hrlfmt.CutApp, PointID: "a1", Time: time.Now()})
	e.waitApplied(a, "sda", 2)
	pts, err := servertest.Admin(t, e.srv, e.dir).Points(ctx(t), "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 {
		t.Fatalf("points: %+v", pts)
	}
	if p := pts[0]; p.ID != "c0" || p.Kind != "crash" || p.FreezeNS != 0 || p.FreezeSeconds != 0 || p.Note != "" || !p.Materializable {
		t.Errorf("crash point: %+v", p)
	}
	if p := pts[1]; p.ID != "a1" || p.Kind != "app" || p.FreezeNS != 12500000 || p.FreezeSeconds != 0.0125 || p.Note != note || !p.Materializable {
		t.Errorf("app point: %+v", p)
	}
}

// TestPolicyPersists: a machine's policy is the default until set; a set
// policy is kept in DATA/machines/<m>.json across a restart; "default"
// goes back; bad policies are refused.
func TestPolicyPersists(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	putSeg(t, a, 0, 'a', nil, servertest.Cut("p0"))
	adm := servertest.Admin(t, e.srv, e.dir)
	p, err := adm.Policy(ctx(t), "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Default || p.Machine != "web1" || p.WindowSeconds != 24*3600 || p.KeepAllSeconds != 2*3600 || p.ThinSeconds != 3600 {
		t.Errorf("default policy: %+v", p)
	}
	want := api.Policy{WindowSeconds: 48 * 3600, KeepAllSeconds: 1800, ThinSeconds: 600}
	if p, err = adm.SetPolicy(ctx(t), "web1", want); err != nil {
		t.Fatal(err)
	}
	want.Machine = "web1"
	if p != want {
		t.Errorf("set: %+v, want %+v", p, want)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, server.MachinesDir, "web1.json"))
	if err != nil || !strings.Contains(string(b), `"policy"`) {
		t.Errorf("machine file: %s %v", b, err)
	}
	e.restart()
	adm = servertest.Admin(t, e.srv, e.dir)
	if p, err = adm.Policy(ctx(t), "web1"); err != nil || p != want {
		t.Errorf("after restart: %+v %v, want %+v", p, err, want)
	}
	for _, bad := range []api.Policy{
		{WindowSeconds: 0, KeepAllSeconds: 1, ThinSeconds: 1},
		{WindowSeconds: 3600, KeepAllSeconds: 7200, ThinSeconds: 60},
		{WindowSeconds: 3600, KeepAllSeconds: 0, ThinSeconds: 60},
		{WindowSeconds: 3600, KeepAllSeconds: 60, ThinSeconds: -1},
	} {
		_, err := adm.SetPolicy(ctx(t), "web1", bad)
		wantStatus(t, err, http.StatusBadRequest)
	}
	if p, err = adm.SetPolicy(ctx(t), "web1", api.Policy{Default: true}); err != nil || !p.Default || p.WindowSeconds != 24*3600 {
		t.Errorf("back to default: %+v %v", p, err)
	}
	_, err = adm.Policy(ctx(t), "nobody")
	wantStatus(t, err, http.StatusNotFound)
}

// TestPruneEndpoint: POST prune applies the machine's policy with the real
// store: a point thinned out is reported dropped, listed as not
// materializable, refused by failover; the kept ones still fail over.
func TestPruneEndpoint(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	// p0 and p1 lie in the same hour (the thinning bucket), 1h50m to
	// 2h50m ago: p1, the newer, is kept, p0 dropped. p2 is recent.
	base := time.Now().Truncate(time.Hour).Add(-2 * time.Hour)
	putSeg(t, a, 0, 'a', nil, cutAt("p0", base.Add(10*time.Minute)))
	putSeg(t, a, 1, 'b', nil, cutAt("p1", base.Add(20*time.Minute)))
	putSeg(t, a, 2, 'c', nil, cutAt("p2", time.Now().Add(-time.Minute)))
	e.waitApplied(a, "sda", 3)
	adm := servertest.Admin(t, e.srv, e.dir)
	if _, err := adm.SetPolicy(ctx(t), "web1", api.Policy{WindowSeconds: 4 * 3600, KeepAllSeconds: 1800, ThinSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	ans, err := adm.Prune(ctx(t), "web1")
	if err != nil {
		t.Fatal(err)
	}
	if ans.Machine != "web1" || ans.Policy.WindowSeconds != 4*3600 || !slices.Equal(ans.Result.DroppedPoints, []string{"p0"}) || ans.Result.MergedSegments < 1 || ans.Result.MergedBytes <= 0 {
		t.Errorf("prune: %+v", ans)
	}
	pts, err := adm.Points(ctx(t), "web1")
	if err != nil {
		t.Fatal(err)
	}
	mat := map[string]bool{}
	for _, p := range pts {
		mat[p.ID] = p.Materializable
	}
	if mat["p0"] || !mat["p1"] || !mat["p2"] {
		t.Errorf("points after prune: %+v", pts)
	}
	_, err = adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "p0", Test: true, Out: t.TempDir()})
	if ae := wantStatus(t, err, http.StatusConflict); ae != nil && !strings.Contains(ae.Message, "no longer materializable") {
		t.Errorf("failover to a dropped point: %v", ae)
	}
	out := t.TempDir()
	if _, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "p1", Test: true, Out: out}); err != nil {
		t.Fatal(err)
	}
	if img, _ := os.ReadFile(filepath.Join(out, "sda.img")); len(img) != diskSize || img[0] != 'b' {
		t.Error("image of p1 after prune is wrong")
	}
	ms, err := adm.Machines(ctx(t))
	if err != nil || len(ms) != 1 || ms[0].LastPrune == nil || ms[0].LastPrune.Error != "" || len(ms[0].Problems) != 0 {
		t.Errorf("machines after prune: %+v %v", ms, err)
	}
	_, err = adm.Prune(ctx(t), "nobody")
	wantStatus(t, err, http.StatusNotFound)
}

// failingPrune is a store whose Prune fails, counting calls per machine.
type failingPrune struct {
	store.Store
	calls map[string]*atomic.Int32
}

func (f *failingPrune) Prune(ctx context.Context, machine string, r store.Retention, now time.Time) (store.PruneResult, error) {
	if c := f.calls[machine]; c != nil {
		c.Add(1)
	}
	return store.PruneResult{}, errors.New("injected prune failure")
}

// TestPruneErrors: a failing Prune is answered 500 by the endpoint, shown
// in the machine's problems, logged by the background pruner, which keeps
// running; the pruner leaves committed machines alone.
func TestPruneErrors(t *testing.T) {
	fp := &failingPrune{calls: map[string]*atomic.Int32{"web1": {}, "db1": {}}}
	e := newEnv(t, func(c *server.Config) {
		fp.Store = c.Store
		c.Store = fp
		c.PruneInterval = 20 * time.Millisecond
	})
	web, db := e.agent("web1"), e.agent("db1")
	putSeg(t, web, 0, 'a', nil, servertest.Cut("p0"))
	putSeg(t, db, 0, 'a', nil, servertest.Cut("d0"))
	e.waitApplied(web, "sda", 1)
	e.waitApplied(db, "sda", 1)
	adm := servertest.Admin(t, e.srv, e.dir)
	_, err := adm.Prune(ctx(t), "web1")
	if ae := wantStatus(t, err, http.StatusInternalServerError); ae != nil && (!strings.Contains(ae.Message, "injected prune failure") || ae.Hint() == "") {
		t.Errorf("prune error: %+v", ae)
	}
	// Fail db1 over for real and commit it: the pruner stops pruning it.
	if _, err := adm.Failover(ctx(t), "db1", api.FailoverRequest{Point: "latest", Out: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Commit(ctx(t), "db1"); err != nil {
		t.Fatal(err)
	}
	dbCalls := fp.calls["db1"].Load()
	n := fp.calls["web1"].Load()
	servertest.WaitFor(t, "three more background prunes", func() bool { return fp.calls["web1"].Load() >= n+3 })
	if got := fp.calls["db1"].Load(); got > dbCalls+1 { // one may have been under way
		t.Errorf("committed machine pruned %d more times", got-dbCalls)
	}
	ms, err := adm.Machines(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "web1" && (len(m.Problems) != 1 || !strings.Contains(m.Problems[0], "prune failed: injected prune failure") || m.LastPrune == nil) {
			t.Errorf("web1 problems: %+v", m)
		}
	}
}

// TestFailoverCommit: a real failover marks the machine failed over
// (replication goes on); commit ends it: the process role answers 410
// with a hint, the points stay materializable by test failover, a real
// failover or a second commit is refused; the state survives a restart;
// registering again protects the machine anew and retires the old
// certificate. A test failover never changes the state, and commit
// without a failover is refused.
func TestFailoverCommit(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	putSeg(t, a, 0, 'a', nil, servertest.Cut("p0"))
	e.waitApplied(a, "sda", 1)
	adm := servertest.Admin(t, e.srv, e.dir)
	state := func() api.Machine {
		t.Helper()
		ms, err := adm.Machines(ctx(t))
		if err != nil || len(ms) != 1 {
			t.Fatalf("machines: %+v %v", ms, err)
		}
		return ms[0]
	}
	if m := state(); m.State != api.StateProtected || m.Failover != nil || m.Committed != nil {
		t.Errorf("new machine: %+v", m)
	}
	_, err := adm.Commit(ctx(t), "web1")
	if ae := wantStatus(t, err, http.StatusConflict); ae != nil && !strings.Contains(ae.Message, "has not failed over") {
		t.Errorf("commit without failover: %+v", ae)
	}
	res, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Test: true, Out: t.TempDir()})
	if err != nil || res.State != api.StateProtected || state().State != api.StateProtected {
		t.Fatalf("test failover changed the state: %+v %v", res, err)
	}
	out := t.TempDir()
	res, err = adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "p0", Out: out})
	if err != nil || res.State != api.StateFailedOver {
		t.Fatalf("failover: %+v %v", res, err)
	}
	m := state()
	if m.State != api.StateFailedOver || m.Failover == nil || m.Failover.Point.ID != "p0" || m.Failover.Out != out || len(m.Failover.Images) != 1 || m.Committed != nil {
		t.Errorf("after failover: %+v", m)
	}
	// Replication goes on until commit.
	putSeg(t, a, 1, 'b', nil, servertest.Cut("p1"))
	e.waitApplied(a, "sda", 2)
	if _, err := adm.Commit(ctx(t), "web1"); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		m := state()
		if m.State != api.StateCommitted || m.Committed == nil || m.Failover == nil || m.Failover.Point.ID != "p0" {
			t.Errorf("committed: %+v", m)
		}
		_, err := put(t, a, "sda", 2, seg(t, "web1", "sda", 2, 0, 'c', "p2"))
		if ae := wantStatus(t, err, http.StatusGone); ae != nil && (!strings.Contains(ae.Message, "committed at") || !strings.Contains(ae.Hint(), "register")) {
			t.Errorf("segment after commit: %+v", ae)
		}
		_, err = a.Process.DiskState(ctx(t), "sda")
		wantStatus(t, err, http.StatusGone)
		out := t.TempDir()
		res, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "p1", Test: true, Out: out})
		if err != nil || res.State != api.StateCommitted {
			t.Fatalf("test failover after commit: %+v %v", res, err)
		}
		if img, _ := os.ReadFile(filepath.Join(out, "sda.img")); len(img) != diskSize || img[0] != 'b' {
			t.Error("image of p1 after commit is wrong")
		}
		_, err = adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Out: t.TempDir()})
		wantStatus(t, err, http.StatusConflict)
		_, err = adm.Commit(ctx(t), "web1")
		wantStatus(t, err, http.StatusConflict)
	}
	check()
	b, _ := os.ReadFile(filepath.Join(e.dir, server.MachinesDir, "web1.json"))
	var rec map[string]any
	if json.Unmarshal(b, &rec) != nil || rec["state"] != api.StateCommitted {
		t.Errorf("machine file: %s", b)
	}
	e.restart()
	adm = servertest.Admin(t, e.srv, e.dir)
	// The old source's certificate, at the new process address.
	p, err := client.NewProcess(e.srv.ProcessAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	a.Process = p
	check()
	// Re-protection: a new registration; the old certificate stays refused.
	b2 := e.agent("web1")
	if m := state(); m.State != api.StateProtected || m.Failover != nil {
		t.Errorf("after registering again: %+v", m)
	}
	_, err = put(t, a, "sda", 2, seg(t, "web1", "sda", 2, 0, 'c', "p2"))
	if ae := wantStatus(t, err, http.StatusForbidden); ae != nil && !strings.Contains(ae.Message, "retired") {
		t.Errorf("old certificate: %+v", ae)
	}
	mustPut(t, b2, "sda", 2, seg(t, "web1", "sda", 2, 0, 'c', "p2"))
}

// TestApplyProblem: a disk whose segments target storage refuses shows
// in the machine's problems until a segment is applied again.
func TestApplyProblem(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	e.store.fail.Store(true)
	putSeg(t, a, 0, 'a', nil, servertest.Cut("p0"))
	adm := servertest.Admin(t, e.srv, e.dir)
	servertest.WaitFor(t, "apply problem shown", func() bool {
		ms, err := adm.Machines(ctx(t))
		return err == nil && len(ms) == 1 && len(ms[0].Problems) == 1 && strings.Contains(ms[0].Problems[0], "apply of disk sda failing: segment 0: injected apply failure")
	})
	e.store.fail.Store(false)
	e.waitApplied(a, "sda", 1)
	if ms, _ := adm.Machines(ctx(t)); len(ms[0].Problems) != 0 {
		t.Errorf("problems after recovery: %v", ms[0].Problems)
	}
}
