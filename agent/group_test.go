package agent

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent/group"
	"github.com/lifeboat-dr/lifeboat/api"
)

// groupMember makes ta a member of group g and opens a session of
// coordinator c1 for point id; it returns the coordinator's end and the
// member's result.
func groupMember(t *testing.T, ta *testAgent, id string) (*group.Conn, chan error) {
	t.Helper()
	ta.group = &groupState{cfg: GroupConfig{PhaseTimeout: 5 * time.Second, FrozenMax: 10 * time.Second}}
	here, there := net.Pipe()
	t.Cleanup(func() { there.Close() })
	gc := group.NewConn(here, "c1")
	gc.First = api.GroupMessage{Op: api.GroupOpPrepare, Group: "g", ID: id, Machine: "c1"}
	done := make(chan error, 1)
	go func() { done <- ta.member(context.Background(), gc) }()
	return group.NewConn(there, "m1"), done
}

// ask sends op as the coordinator and returns the member's answer.
func ask(t *testing.T, co *group.Conn, op string) api.GroupMessage {
	t.Helper()
	if op != "" {
		if err := co.Send(api.GroupMessage{Op: op, Group: "g", ID: "gp-1", Machine: "c1"}, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := co.Recv(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGroupMemberPhases: a member walked through every phase answers
// each, cuts while frozen, and writes a group point at the generation
// before its frozen cut once committed.
func TestGroupMemberPhases(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	co, done := groupMember(t, ta, "gp-1")
	if m := ask(t, co, ""); m.Op != api.GroupOpPrepare || !m.OK {
		t.Fatalf("prepare answered %+v", m)
	}
	for _, op := range []string{api.GroupOpFreeze, api.GroupOpCut, api.GroupOpThaw, api.GroupOpValidate, api.GroupOpCommit} {
		if m := ask(t, co, op); m.Op != op || !m.OK {
			t.Fatalf("%s answered %+v", op, m)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	steps := ta.trace.get()
	fi := slices.Index(steps, "freeze")
	if fi < 0 || fi+2 >= len(steps) || !strings.HasPrefix(steps[fi+1], "cut ") || steps[fi+2] != "thaw" {
		t.Fatalf("steps %v: want freeze, cut, thaw in a row", steps)
	}
	cutGen, _ := strconv.ParseUint(strings.TrimPrefix(steps[fi+1], "cut "), 10, 64)
	if ta.group.err != "" || ta.group.last.ID != "gp-1" || ta.lastPoint.ID != "gp-1" || ta.lastPoint.Kind != "group" || ta.lastPoint.Gen != cutGen-1 {
		t.Fatalf("group point %+v, last point %+v, error %q; want gp-1 of kind group at generation %d", ta.group.last, ta.lastPoint, ta.group.err, cutGen-1)
	}
	if c := cuts(ta.journal(t, 0)); !slices.Contains(c, cutGen-1) {
		t.Fatalf("cuts %v: no CUT of the group point", c)
	}
}

// TestGroupMemberAbortThaws: a coordinator that aborts while the member
// is frozen gets its answer; the member thaws at once, never cuts, and
// its status names the point and the phase.
func TestGroupMemberAbortThaws(t *testing.T) {
	ta := newTestAgent(t, 1)
	ta.round(t)
	ta.round(t)
	co, done := groupMember(t, ta, "gp-1")
	ask(t, co, "")
	if m := ask(t, co, api.GroupOpFreeze); !m.OK {
		t.Fatalf("freeze answered %+v", m)
	}
	if m := ask(t, co, api.GroupOpAbort); m.Op != api.GroupOpCut || m.OK {
		t.Fatalf("abort answered %+v, want a failed cut", m)
	}
	if err := <-done; err != nil {
		t.Fatalf("member returned a round error: %v", err)
	}
	steps := ta.trace.get()
	fi := slices.Index(steps, "freeze")
	if fi < 0 || !slices.Equal(steps[fi:], []string{"freeze", "thaw"}) {
		t.Fatalf("steps %v: want freeze then thaw, no cut", steps)
	}
	if !strings.Contains(ta.group.err, "group point gp-1 (cut): coordinator sent abort") || ta.lastPoint.Kind == "group" {
		t.Fatalf("group error %q, last point %+v", ta.group.err, ta.lastPoint)
	}
}
