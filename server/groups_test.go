package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// groupSeg is segment seq of disk sda with a write and cuts of kind group.
func groupSeg(t *testing.T, machine string, seq uint64, ids ...string) string {
	sg := servertest.Segment{Machine: machine, Disk: "sda", DiskSize: diskSize, Seq: seq, Gen: seq + 1,
		Writes: []servertest.Write{{Off: int64(seq) * 4096, Data: bytes.Repeat([]byte{'g'}, 4096)}}}
	for _, id := range ids {
		sg.Cuts = append(sg.Cuts, hrlfmt.Cut{Kind: hrlfmt.CutGroup, PointID: id, Gen: seq + 1, Time: time.Now()})
	}
	return sg.Build(t, t.TempDir())
}

func agentConfig(t *testing.T, e *env, a *servertest.Agent) *client.AgentConfig {
	c, err := client.NewAgentConfig(e.srv.APIAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGroups(t *testing.T) {
	e := newEnv(t)
	adm := servertest.Admin(t, e.srv, e.dir)
	m1, m2, m3 := e.agent("m1"), e.agent("m2"), e.agent("m3")

	// Creation is checked.
	_, err := adm.CreateGroup(ctx(t), api.GroupRequest{Name: "g", Machines: []string{"m1"}})
	wantStatus(t, err, http.StatusBadRequest)
	_, err = adm.CreateGroup(ctx(t), api.GroupRequest{Name: "g", Machines: []string{"m1", "nosuch"}})
	wantStatus(t, err, http.StatusNotFound)
	g, err := adm.CreateGroup(ctx(t), api.GroupRequest{Name: "g", Machines: []string{"m2", "m1"}, IntervalSeconds: -1})
	if err != nil {
		t.Fatal(err)
	}
	if g.Coordinator != "m1" || len(g.Machines) != 2 || g.Machines[0] != "m1" {
		t.Fatalf("group %+v; want machines sorted, m1 coordinating", g)
	}
	_, err = adm.CreateGroup(ctx(t), api.GroupRequest{Name: "h", Machines: []string{"m2", "m3"}})
	wantStatus(t, err, http.StatusConflict)

	// Agents learn their group; an unspecified listen host becomes the
	// address the agent came from.
	c1, c2, c3 := agentConfig(t, e, m1), agentConfig(t, e, m2), agentConfig(t, e, m3)
	asg, err := c2.SyncGroup(ctx(t), ":20004")
	if err != nil {
		t.Fatal(err)
	}
	if asg.Group != "g" || asg.Coordinator != "m1" || asg.Request != "" {
		t.Fatalf("assignment of m2 %+v", asg)
	}
	if asg3, err := c3.SyncGroup(ctx(t), ""); err != nil || asg3.Group != "" {
		t.Fatalf("assignment of m3 %+v, %v; want no group", asg3, err)
	}
	if _, err := c1.SyncGroup(ctx(t), "127.0.0.2:20004"); err != nil {
		t.Fatal(err)
	}
	g, err = adm.Group(ctx(t), "g")
	if err != nil {
		t.Fatal(err)
	}
	if g.Members[0].Addr != "127.0.0.2:20004" || g.Members[1].Addr != "127.0.0.1:20004" {
		t.Fatalf("members %+v", g.Members)
	}

	// An operator's request reaches the coordinator only; only the
	// coordinator may report; the request's answer is the report.
	type answer struct {
		r   api.GroupPointResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := adm.GroupPoint(ctx(t), "g", "20s")
		done <- answer{r, err}
	}()
	var req string
	servertest.WaitFor(t, "the request", func() bool {
		a, err := c1.SyncGroup(ctx(t), "127.0.0.2:20004")
		req = a.Request
		return err == nil && req != ""
	})
	if a, _ := c2.SyncGroup(ctx(t), ":20004"); a.Request != "" {
		t.Fatalf("a member that does not coordinate got request %q", a.Request)
	}
	res := api.GroupPointResult{Group: "g", ID: "gp0", Request: req, OK: false, Phase: "connect", Failed: []string{"m2"}, Error: "m2: no answer"}
	wantStatus(t, c2.GroupResult(ctx(t), res), http.StatusForbidden)
	if err := c1.GroupResult(ctx(t), res); err != nil {
		t.Fatal(err)
	}
	ans := <-done
	if ans.err != nil || ans.r.ID != "gp0" || ans.r.OK {
		t.Fatalf("group point answer %+v, %v", ans.r, ans.err)
	}
	g, _ = adm.Group(ctx(t), "g")
	if g.LastResult == nil || g.LastResult.OK || len(g.Problems) == 0 {
		t.Fatalf("group after a failed point %+v; want it and a problem", g)
	}

	// A group point is listed only when every member lists its part.
	for _, a := range []*servertest.Agent{m1, m2} {
		if _, err := a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, m1, "sda", 0, groupSeg(t, "m1", 0, "gp1"))
	mustPut(t, m1, "sda", 1, groupSeg(t, "m1", 1, "gp2"))
	mustPut(t, m2, "sda", 0, groupSeg(t, "m2", 0, "gp1"))
	e.waitApplied(m1, "sda", 2)
	e.waitApplied(m2, "sda", 1)
	pts, err := adm.GroupPoints(ctx(t), "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].ID != "gp1" || pts[0].Kind != "group" || len(pts[0].Points) != 2 {
		t.Fatalf("group points %+v; want gp1 only (gp2 lacks m2's part)", pts)
	}
	_, err = adm.GroupFailover(ctx(t), "g", api.GroupFailoverRequest{Point: "gp2", Test: true, Out: t.TempDir()})
	wantStatus(t, err, http.StatusNotFound)
	out := t.TempDir()
	fr, err := adm.GroupFailover(ctx(t), "g", api.GroupFailoverRequest{Point: "latest", Test: true, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if fr.Point.ID != "gp1" || len(fr.Machines) != 2 || fr.Machines[1].Images[0].Path != out+"/m2/sda.img" {
		t.Fatalf("group failover %+v", fr)
	}
	if _, err := adm.DeleteGroup(ctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	_, err = adm.Group(ctx(t), "g")
	wantStatus(t, err, http.StatusNotFound)
}
