package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/configsrv"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPlans: a plan of two ordered groups with a script between them runs
// group 1, then the script (which sees group 1's images and not group
// 2's, and the plan's environment), then group 2; it is kept in
// DATA/plans/<name>.json across a restart; a failing script stops the plan
// before the next group; a real run fails every machine over; bad plans
// are refused.
func TestPlans(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{"db1", "web1"} {
		a := e.agent(m)
		putSeg(t, a, 0, m[0], nil, servertest.Cut(m+"-p0"))
		e.waitApplied(a, "sda", 1)
	}
	adm := servertest.Admin(t, e.srv, e.dir)
	record := filepath.Join(t.TempDir(), "record")
	sc := script(t, `{
echo "plan=$LIFEBOAT_PLAN group=$LIFEBOAT_GROUP out=$LIFEBOAT_OUT test=$LIFEBOAT_TEST machines=$LIFEBOAT_MACHINES"
test -f "$LIFEBOAT_OUT/db1/sda.img" && echo "db1 image: yes" || echo "db1 image: no"
test -e "$LIFEBOAT_OUT/web1" && echo "web1 dir: yes" || echo "web1 dir: no"
} >> `+record+"\necho done\n")
	p, err := adm.CreatePlan(ctx(t), api.Plan{Name: "shop", Groups: [][]string{{"db1"}, {"web1"}}, Scripts: []api.PlanScript{{AfterGroup: 1, Path: sc}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.ScriptTimeoutSeconds != 600 || p.Created.IsZero() {
		t.Errorf("created: %+v", p)
	}
	if _, err := os.Stat(filepath.Join(e.dir, configsrv.PlansDir, "shop.json")); err != nil {
		t.Error(err)
	}
	e.restart()
	adm = servertest.Admin(t, e.srv, e.dir)
	ps, err := adm.Plans(ctx(t))
	if err != nil || len(ps) != 1 || ps[0].Name != "shop" || len(ps[0].Groups) != 2 || ps[0].Scripts[0].Path != sc {
		t.Fatalf("plans after restart: %+v %v", ps, err)
	}

	out := filepath.Join(t.TempDir(), "out")
	res, err := adm.TestPlan(ctx(t), "shop", api.PlanRequest{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Stopped != nil || !res.Test || res.Point != "latest" || len(res.Groups) != 2 {
		t.Fatalf("plan test: %+v", res)
	}
	g1, g2 := res.Groups[0], res.Groups[1]
	if len(g1.Machines) != 1 || g1.Machines[0].Machine != "db1" || g1.Machines[0].Failover.Point.ID != "db1-p0" ||
		g1.Machines[0].Failover.Images[0].Path != filepath.Join(out, "db1", "sda.img") || len(g1.Scripts) != 1 || g1.Scripts[0].ExitStatus != 0 ||
		strings.TrimSpace(g1.Scripts[0].Output) != "done" {
		t.Errorf("group 1: %+v", g1)
	}
	if len(g2.Machines) != 1 || g2.Machines[0].Machine != "web1" || !g2.Machines[0].OK || len(g2.Scripts) != 0 {
		t.Errorf("group 2: %+v", g2)
	}
	b, _ := os.ReadFile(record)
	want := "plan=shop group=1 out=" + out + " test=1 machines=db1\ndb1 image: yes\nweb1 dir: no\n"
	if string(b) != want {
		t.Errorf("script saw:\n%s\nwant:\n%s", b, want)
	}
	for _, m := range []string{"db1", "web1"} {
		if img, err := os.ReadFile(filepath.Join(out, m, "sda.img")); err != nil || img[0] != m[0] {
			t.Errorf("image of %s: %v", m, err)
		}
	}
	ms, _ := adm.Machines(ctx(t))
	for _, m := range ms {
		if m.State != api.StateProtected {
			t.Errorf("test plan changed %s's state: %s", m.Name, m.State)
		}
	}

	// A failing script stops the plan after group 1.
	bad := script(t, "echo failing >&2; exit 3\n")
	if _, err := adm.CreatePlan(ctx(t), api.Plan{Name: "broken", Groups: [][]string{{"db1"}, {"web1"}}, Scripts: []api.PlanScript{{AfterGroup: 1, Path: bad}}}); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "out")
	res, err = adm.TestPlan(ctx(t), "broken", api.PlanRequest{Out: out2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Stopped == nil || res.Stopped.Group != 1 || res.Stopped.Script != bad || res.Stopped.Error != "exited with status 3" ||
		len(res.Groups) != 1 || res.Groups[0].Scripts[0].ExitStatus != 3 || !strings.Contains(res.Groups[0].Scripts[0].Output, "failing") {
		t.Errorf("broken plan: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(out2, "web1")); !os.IsNotExist(err) {
		t.Errorf("group 2 ran after a failed script: %v", err)
	}

	// A machine that cannot fail over stops the plan after its group.
	e.agent("empty") // registered, no point yet
	if _, err := adm.CreatePlan(ctx(t), api.Plan{Name: "nopoint", Groups: [][]string{{"db1", "empty"}, {"web1"}}}); err != nil {
		t.Fatal(err)
	}
	out3 := filepath.Join(t.TempDir(), "out")
	res, err = adm.TestPlan(ctx(t), "nopoint", api.PlanRequest{Out: out3})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Stopped == nil || res.Stopped.Group != 1 || res.Stopped.Machine != "empty" || !strings.Contains(res.Stopped.Error, "no recovery point") ||
		len(res.Groups) != 1 || !res.Groups[0].Machines[0].OK || res.Groups[0].Machines[1].OK || res.Groups[0].Machines[1].Failover != nil {
		t.Errorf("plan with a machine without points: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(out3, "web1")); !os.IsNotExist(err) {
		t.Errorf("group 2 ran after a failed group: %v", err)
	}

	// A script that outlives its timeout is killed.
	slow := script(t, "sleep 30\n")
	if _, err := adm.CreatePlan(ctx(t), api.Plan{Name: "slow", Groups: [][]string{{"db1"}}, Scripts: []api.PlanScript{{AfterGroup: 1, Path: slow}}, ScriptTimeoutSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err = adm.TestPlan(ctx(t), "slow", api.PlanRequest{Out: filepath.Join(t.TempDir(), "out")})
	if err != nil || res.OK || !res.Groups[0].Scripts[0].TimedOut || time.Since(start) > 15*time.Second {
		t.Errorf("slow script: %+v %v after %s", res, err, time.Since(start))
	}

	// The real run fails both machines over.
	res, err = adm.RunPlan(ctx(t), "shop", api.PlanRequest{Out: filepath.Join(t.TempDir(), "run"), Point: "latest"})
	if err != nil || !res.OK || res.Test {
		t.Fatalf("plan run: %+v %v", res, err)
	}
	ms, _ = adm.Machines(ctx(t))
	for _, m := range ms {
		if m.Name != "empty" && m.State != api.StateFailedOver {
			t.Errorf("after plan run, %s is %s", m.Name, m.State)
		}
	}

	for _, c := range []struct {
		p      api.Plan
		status int
	}{
		{api.Plan{Name: "shop", Groups: [][]string{{"db1"}}}, http.StatusConflict},
		{api.Plan{Name: "x", Groups: [][]string{{"db1"}, {"nobody"}}}, http.StatusNotFound},
		{api.Plan{Name: "x", Groups: [][]string{{"db1"}, {"db1"}}}, http.StatusBadRequest},
		{api.Plan{Name: "x"}, http.StatusBadRequest},
		{api.Plan{Name: "x", Groups: [][]string{{"db1"}}, Scripts: []api.PlanScript{{AfterGroup: 2, Path: sc}}}, http.StatusBadRequest},
		{api.Plan{Name: "x", Groups: [][]string{{"db1"}}, Scripts: []api.PlanScript{{AfterGroup: 1, Path: "relative.sh"}}}, http.StatusBadRequest},
		{api.Plan{Name: "x", Groups: [][]string{{"db1"}}, Scripts: []api.PlanScript{{AfterGroup: 1, Path: record}}}, http.StatusBadRequest},
		{api.Plan{Name: "../x", Groups: [][]string{{"db1"}}}, http.StatusBadRequest},
	} {
		_, err := adm.CreatePlan(ctx(t), c.p)
		wantStatus(t, err, c.status)
	}
	_, err = adm.TestPlan(ctx(t), "nope", api.PlanRequest{Out: t.TempDir()})
	wantStatus(t, err, http.StatusNotFound)
	_, err = adm.TestPlan(ctx(t), "shop", api.PlanRequest{Out: "rel"})
	wantStatus(t, err, http.StatusBadRequest)
	_, err = adm.TestPlan(ctx(t), "shop", api.PlanRequest{Out: t.TempDir(), Point: "db1-p0"})
	wantStatus(t, err, http.StatusBadRequest)
	if _, err := adm.DeletePlan(ctx(t), "broken"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := adm.Plans(ctx(t)); len(ps) != 3 {
		t.Errorf("after delete: %+v", ps)
	}
}
