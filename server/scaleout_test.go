package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// scaleEnv is a configuration server (every role, id ps1) and a joined
// process server (ps2) sharing one target storage directory.
type scaleEnv struct {
	t            *testing.T
	dirA, dirB   string
	storeDir     string
	a, b         *server.Server
	admin        *client.Admin
	passphrase   string
	heartbeatMax time.Duration
}

func newScaleEnv(t *testing.T) *scaleEnv {
	e := &scaleEnv{t: t, dirA: servertest.Init(t), dirB: filepath.Join(t.TempDir(), "ps2"),
		storeDir: filepath.Join(t.TempDir(), "shared-store"), heartbeatMax: 3 * time.Second}
	cfg := servertest.Config(t, e.dirA)
	cfg.Name, cfg.StoreDir, cfg.SharedStore, cfg.HeartbeatTimeout = "ps1", e.storeDir, true, e.heartbeatMax
	e.a = servertest.Start(t, cfg)
	e.admin = servertest.Admin(t, e.a, e.dirA)
	pass, err := pki.ReadPassphrase(e.dirA)
	if err != nil {
		t.Fatal(err)
	}
	e.passphrase = pass
	return e
}

func (e *scaleEnv) join(id, pass string) error {
	return process.Join(ctx(e.t), process.JoinOptions{DataDir: e.dirB, ConfigServer: e.a.APIAddr(), ID: id, Passphrase: pass})
}

func (e *scaleEnv) startB() {
	cfg := servertest.Config(e.t, e.dirB)
	cfg.Roles = server.Roles{Process: true}
	cfg.StoreDir, cfg.SharedStore = e.storeDir, true
	e.b = servertest.Start(e.t, cfg)
}

func (e *scaleEnv) server(id string) api.ProcessServer {
	ss, err := e.admin.Servers(ctx(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range ss {
		if s.ID == id {
			return s
		}
	}
	return api.ProcessServer{}
}

func (e *scaleEnv) machine(name string) api.Machine {
	ms, err := e.admin.Machines(ctx(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m
		}
	}
	e.t.Fatalf("machine %s not listed", name)
	return api.Machine{}
}

// processFor returns a process client of machine a towards addr.
func processFor(t *testing.T, a *servertest.Agent, addr string) *client.Process {
	p, err := client.NewProcess(addr, a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

func TestScaleOutJoinAssignMove(t *testing.T) {
	e := newScaleEnv(t)

	// Joining needs the passphrase and an id of its own.
	wantStatus(t, e.join("ps2", "wrong passphrase"), http.StatusUnauthorized)
	wantStatus(t, e.join("ps1", e.passphrase), http.StatusConflict)
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatalf("join: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dirB, pki.CAKeyFile)); err == nil {
		t.Fatal("a joined server got the CA key")
	}
	e.startB()
	servertest.WaitFor(t, "ps2 healthy in the server list", func() bool {
		s := e.server("ps2")
		return s.Healthy && s.Address == e.b.ProcessAddr()
	})
	if s := e.server("ps1"); !s.Local || !s.Healthy || s.Address != e.a.ProcessAddr() {
		t.Fatalf("local process server listed as %+v", s)
	}

	// A tie goes to the configuration server's own process role.
	m1 := servertest.Register(t, e.a, e.dirA, "m1")
	if m1.Addr != e.a.ProcessAddr() {
		t.Fatalf("m1 assigned to %s, want the local process role %s", m1.Addr, e.a.ProcessAddr())
	}
	if _, err := m1.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	onB := processFor(t, m1, e.b.ProcessAddr())
	mustPut(t, m1, "sda", 0, seg(t, "m1", "sda", 0, 0, 0xa0))
	mustPut(t, m1, "sda", 1, seg(t, "m1", "sda", 1, 4096, 0xa1, "p1"))
	// The server it is not assigned to refuses it, with its name.
	_, err := onB.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2))
	if ae := wantStatus(t, err, http.StatusMisdirectedRequest); !strings.Contains(ae.Message, "ps2") {
		t.Errorf("refusal does not name the server: %s", ae.Message)
	}
	// The second machine goes to the least loaded: ps2.
	m2 := servertest.Register(t, e.a, e.dirA, "m2")
	if m2.Addr != e.b.ProcessAddr() {
		t.Fatalf("m2 assigned to %s, want ps2 at %s", m2.Addr, e.b.ProcessAddr())
	}
	if m := e.machine("m1"); m.ProcessServer != "ps1" || m.ProcessAddress != e.a.ProcessAddr() {
		t.Fatalf("m1 listed on %q %q", m.ProcessServer, m.ProcessAddress)
	}

	// Move m1 to ps2: the local role is drained first.
	res, err := e.admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps2"})
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	if res.From != "ps1" || res.To != "ps2" || len(res.Drained) != 1 || !res.Drained[0].Applied || res.Drained[0].AppliedSeq != 1 || res.Drained[0].NextSeq != 2 {
		t.Fatalf("move result %+v", res)
	}
	_, err = m1.Process.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2))
	if ae := wantStatus(t, err, http.StatusMisdirectedRequest); !strings.Contains(ae.Message, "ps2") || !strings.Contains(ae.Message, e.b.ProcessAddr()) {
		t.Errorf("old server's refusal names not the new one: %s", ae.Message)
	}
	// The agent learns its server through its config poll.
	conf, err := client.NewAgentConfig(e.a.APIAddr(), m1.Cert, m1.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	asg, err := conf.SyncGroup(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if asg.ProcessServer != e.b.ProcessAddr() {
		t.Fatalf("config poll names %q, want %q", asg.ProcessServer, e.b.ProcessAddr())
	}
	// ps2 resumes where ps1 stopped, once its heartbeat has the move.
	servertest.WaitFor(t, "ps2 serves m1", func() bool {
		st, err := onB.DiskState(ctx(t), "sda")
		return err == nil && st.NextSeq == 2
	})
	_, err = onB.PutSegmentFile(ctx(t), "sda", 3, seg(t, "m1", "sda", 3, 0, 0xff))
	if ae := wantStatus(t, err, http.StatusConflict); ae.Expected == nil || *ae.Expected != 2 {
		t.Fatalf("gap not refused with expected 2: %+v", ae)
	}
	if _, err := onB.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2)); err != nil {
		t.Fatal(err)
	}
	if _, err := onB.PutSegmentFile(ctx(t), "sda", 3, seg(t, "m1", "sda", 3, 12288, 0xa3, "p3")); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "ps2's progress reported to the configuration server", func() bool {
		m := e.machine("m1")
		return m.ProcessServer == "ps2" && len(m.Disks) == 1 && m.Disks[0].Applied && m.Disks[0].AppliedSeq == 3 && m.LastSeen != nil
	})

	// And back to ps1: ps2 is drained over mutual TLS.
	res, err = e.admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps1"})
	if err != nil {
		t.Fatalf("move back: %v", err)
	}
	if len(res.Drained) != 1 || res.Drained[0].NextSeq != 4 || res.Epoch != 2 {
		t.Fatalf("move back result %+v", res)
	}
	_, err = onB.PutSegmentFile(ctx(t), "sda", 4, seg(t, "m1", "sda", 4, 16384, 0xa4))
	wantStatus(t, err, http.StatusServiceUnavailable)
	mustPut(t, m1, "sda", 4, seg(t, "m1", "sda", 4, 16384, 0xa4, "p4"))
	waitNext := func(p *client.Process, next uint64) {
		servertest.WaitFor(t, "segments applied", func() bool {
			st, err := p.DiskState(ctx(t), "sda")
			return err == nil && st.Applied && st.AppliedSeq+1 == next
		})
	}
	waitNext(m1.Process, 5)

	// The replica holds every write, whichever server applied it.
	out := filepath.Join(t.TempDir(), "out")
	fr, err := e.admin.Failover(ctx(t), "m1", api.FailoverRequest{Point: "p4", Test: true, Out: out})
	if err != nil {
		t.Fatalf("test failover: %v", err)
	}
	img, err := os.ReadFile(fr.Images[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for i, fill := range []byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4} {
		if !bytes.Equal(img[i*4096:(i+1)*4096], bytes.Repeat([]byte{fill}, 4096)) {
			t.Errorf("block %d of the image is not %#x", i, fill)
		}
	}

	// A process server that is gone shows in both lists, with a remedy;
	// a move off it needs --force.
	mustPutB := processFor(t, m2, e.b.ProcessAddr())
	if _, err := mustPutB.PutSegmentFile(ctx(t), "sda", 0, seg(t, "m2", "sda", 0, 0, 0xb0)); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "ps2 unhealthy", func() bool { return !e.server("ps2").Healthy })
	if s := e.server("ps2"); len(s.Problems) == 0 || !strings.Contains(s.Problems[0], "lifeboat move") {
		t.Errorf("unhealthy server's problems: %q", s.Problems)
	}
	m := e.machine("m2")
	if !strings.Contains(strings.Join(m.Problems, "\n"), "process server ps2") {
		t.Errorf("m2's problems do not name its silent process server: %q", m.Problems)
	}
	_, err = e.admin.Move(ctx(t), "m2", api.MoveRequest{To: "ps1"})
	if ae := wantStatus(t, err, http.StatusBadGateway); !strings.Contains(ae.Hint(), "--force") {
		t.Errorf("hint of a move off a dead server: %s", ae.Hint())
	}
	if _, err := e.admin.Move(ctx(t), "m2", api.MoveRequest{To: "ps1", Force: true}); err != nil {
		t.Fatalf("forced move: %v", err)
	}
	if m := e.machine("m2"); m.ProcessServer != "ps1" {
		t.Fatalf("m2 on %q after the forced move", m.ProcessServer)
	}
}

// TestScaleOutDrainWaitsForApply: a move waits until the old server has
// applied every segment it acknowledged.
func TestScaleOutDrainWaitsForApply(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.Name = "ps1"; c.DrainTimeout = 2 * time.Second })
	a := e.agent("m1")
	mustPut(t, a, "sda", 0, seg(t, "m1", "sda", 0, 0, 1))
	e.waitApplied(a, "sda", 1)
	// A healthy joined server to move to: forge one from the same CA.
	dirB := filepath.Join(t.TempDir(), "ps2")
	pass, _ := pki.ReadPassphrase(e.dir)
	if err := process.Join(ctx(t), process.JoinOptions{DataDir: dirB, ConfigServer: e.srv.APIAddr(), ID: "ps2", Passphrase: pass}); err != nil {
		t.Fatal(err)
	}
	cfgB := servertest.Config(t, dirB)
	cfgB.Roles = server.Roles{Process: true}
	servertest.Start(t, cfgB)
	admin := servertest.Admin(t, e.srv, e.dir)
	servertest.WaitFor(t, "ps2 healthy", func() bool {
		ss, err := admin.Servers(ctx(t))
		return err == nil && len(ss) == 2 && ss[1].Healthy
	})
	// Apply fails: the drain cannot finish and the move is refused;
	// the machine stays and keeps replicating to ps1.
	e.store.fail.Store(true)
	mustPut(t, a, "sda", 1, seg(t, "m1", "sda", 1, 4096, 2))
	_, err := admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps2"})
	wantStatus(t, err, http.StatusGatewayTimeout)
	var m api.Machine
	ms, _ := admin.Machines(ctx(t))
	for _, x := range ms {
		if x.Name == "m1" {
			m = x
		}
	}
	if m.ProcessServer != "ps1" {
		t.Fatalf("m1 on %q after a failed move", m.ProcessServer)
	}
	e.store.fail.Store(false)
	mustPut(t, a, "sda", 2, seg(t, "m1", "sda", 2, 8192, 3))
	res, err := admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Drained[0].AppliedSeq != 2 {
		t.Fatalf("drained %+v", res.Drained)
	}
	if e.store.calls("m1", "sda", 1) != 1 || e.store.calls("m1", "sda", 2) != 1 {
		t.Fatal("acknowledged segments not applied before the move")
	}
}
