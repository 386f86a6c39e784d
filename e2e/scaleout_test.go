//go:build linux

package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// scaleStatus is the part of agentctl status --json this test reads.
type scaleStatus struct {
	Server struct {
		Address string `json:"address"`
	} `json:"server"`
	Disks []struct {
		State     string `json:"state"`
		SentBytes int64  `json:"sent_bytes"`
		Spool     struct {
			NextSeq uint64 `json:"next_seq"`
		} `json:"spool"`
	} `json:"disks"`
}

func (a *agent) scaleStatus() (scaleStatus, error) {
	var st scaleStatus
	out, err := a.ctl("status", "--json")
	if out == "" {
		return st, err
	}
	return st, json.Unmarshal([]byte(out), &st)
}

// waitState reads the server.json of a data directory until it names a
// process address.
func waitProcessAddr(t *testing.T, p *proc, data string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(data, "server.json"))
		var st struct{ Process string }
		if err == nil && json.Unmarshal(b, &st) == nil && st.Process != "" {
			return st.Process
		}
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("server did not start:\n%s", p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scaleOut is a configuration server with every role (ps1) and a joined
// process server (ps2) on a shared target storage directory.
type scaleOut struct {
	a     *server
	b     *proc
	addrB string // ps2's process address
}

// startScaleOut starts ps1 and ps2 and waits until ps1 lists ps2 as
// healthy.
func startScaleOut(t *testing.T) scaleOut {
	t.Helper()
	shared := filepath.Join(t.TempDir(), "store")
	dataA := t.TempDir()
	run(t, bin("lifeboat-server"), "init", "--data", dataA)
	srvA := &server{t: t, data: dataA, proxy: newProxy(t)}
	srvA.p = newProc(t, "server-ps1", bin("lifeboat-server"), "run", "--data", dataA, "--name", "ps1",
		"--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--metrics", "", "--store", shared, "--shared-store")
	srvA.start()
	dataB := filepath.Join(t.TempDir(), "ps2")
	if out := run(t, bin("lifeboat-server"), "init", "--data", dataB, "--join", srvA.api, "--name", "ps2",
		"--passphrase-file", filepath.Join(dataA, "passphrase")); !strings.Contains(out, "joined") {
		t.Fatalf("init --join said: %s", out)
	}
	pB := newProc(t, "server-ps2", bin("lifeboat-server"), "run", "--data", dataB, "--roles", "process",
		"--listen", "127.0.0.1:0", "--metrics", "", "--store", shared, "--shared-store")
	pB.start()
	addrB := waitProcessAddr(t, pB, dataB)
	waitFor(t, "ps2 healthy in lifeboat servers", func() bool {
		out, err := srvA.lifeboat("servers", "--json")
		var ss []struct {
			ID      string
			Address string
			Healthy bool
		}
		if err != nil || json.Unmarshal([]byte(out), &ss) != nil {
			return false
		}
		for _, s := range ss {
			if s.ID == "ps2" && s.Healthy && s.Address == addrB {
				return true
			}
		}
		return false
	})
	return scaleOut{a: srvA, b: pB, addrB: addrB}
}

// move moves the agent's machine from ps1 to ps2 (lifeboat move) and
// returns the next sequence number of its drained disk.
func (so scaleOut) move(t *testing.T, ag *agent) uint64 {
	t.Helper()
	out, err := so.a.lifeboat("move", ag.name, "--to", "ps2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var mv struct {
		From, To string
		Drained  []struct {
			NextSeq uint64 `json:"next_seq"`
		}
	}
	if err := json.Unmarshal([]byte(out), &mv); err != nil || mv.From != "ps1" || mv.To != "ps2" || len(mv.Drained) != 1 {
		t.Fatalf("move: %v: %s", err, out)
	}
	return mv.Drained[0].NextSeq
}

// waitMoved waits until the agent replicates to ps2 and ps2 has applied
// segments after next, the drained disk's next sequence number: ps2
// continues the segment sequence.
func (so scaleOut) waitMoved(t *testing.T, ag *agent, next uint64) {
	t.Helper()
	waitFor(t, "agent on ps2", func() bool {
		st, err := ag.scaleStatus()
		return err == nil && st.Server.Address == so.addrB
	})
	waitFor(t, "ps2 applies segments after the drained ones", func() bool {
		m, ok := machine(t, so.a, ag.name)
		return ok && m.ProcessServer == "ps2" && len(m.Disks) == 1 && m.Disks[0].Applied && m.Disks[0].AppliedSeq >= next+2
	})
}

// TestScaleOutMoveWithoutResync: a configuration server (every role) and a
// joined process server share the target storage directory; an agent
// replicates a disk to the first, is moved to the second while a writer
// runs, and keeps replicating there with no initial sync or resync; a
// failover afterwards is the source byte for byte.
func TestScaleOutMoveWithoutResync(t *testing.T) {
	requireE2E(t)
	const size = 64 * mib
	loop := testenv.NewLoop(t, size)
	// Incompressible content: a full copy would show in the bytes sent.
	rnd := make([]byte, size)
	rand.Read(rnd)
	if err := os.WriteFile(loop.Path, rnd, 0); err != nil {
		t.Fatal(err)
	}
	// The configuration server ps1 and the joined process server ps2.
	so := startScaleOut(t)
	srvA := so.a

	// The agent replicates to ps1 (a tie goes to the configuration
	// server's own process role).
	ag := startAgent(t, srvA, "so-host", []string{loop.Path}, "--point-interval", "2s", "--group-listen", "")
	t.Cleanup(func() { ag.dumpOnFailure() })
	waitFor(t, "initial sync done", func() bool {
		st, err := ag.scaleStatus()
		return err == nil && len(st.Disks) == 1 && st.Disks[0].State == "protected"
	})
	st0, _ := ag.scaleStatus()
	if st0.Server.Address == so.addrB {
		t.Fatalf("agent started on ps2; want ps1")
	}

	w := newSeqWriter(t, loop.Path, size)
	w.start(100)
	// Watch the agent throughout the move: protected, and bytes sent
	// never reset (a resync starts them again).
	var (
		mu       sync.Mutex
		bad      []string
		lastSent int64
	)
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(200 * time.Millisecond):
			}
			st, err := ag.scaleStatus()
			if err != nil || len(st.Disks) != 1 {
				continue
			}
			mu.Lock()
			if st.Disks[0].State != "protected" {
				bad = append(bad, "state "+st.Disks[0].State)
			}
			if st.Disks[0].SentBytes < lastSent {
				bad = append(bad, "sent bytes went back")
			}
			lastSent = st.Disks[0].SentBytes
			mu.Unlock()
		}
	}()
	time.Sleep(3 * time.Second)
	before, _ := ag.scaleStatus()
	w.mu.Lock()
	writesBefore := len(w.history)
	w.mu.Unlock()

	// The agent follows; ps2 continues the segment sequence.
	so.waitMoved(t, ag, so.move(t, ag))
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	id := ag.bookmark()
	close(stopWatch)
	<-watched
	after, _ := ag.scaleStatus()
	w.mu.Lock()
	written := int64(len(w.history)-writesBefore) * 4096
	w.mu.Unlock()
	mu.Lock()
	if len(bad) > 0 {
		t.Errorf("the agent left protected during the move: %v", bad[:min(len(bad), 5)])
	}
	mu.Unlock()
	if len(before.Disks) != 1 || len(after.Disks) != 1 {
		t.Fatal("no disk in status")
	}
	sent := after.Disks[0].SentBytes - before.Disks[0].SentBytes
	t.Logf("after the move began: %d bytes written, %d bytes journaled", written, sent)
	if sent < 0 || sent > 2*written+4*mib {
		t.Errorf("journaled %d bytes for %d bytes of new writes: a full copy or resync went on", sent, written)
	}
	if st, err := ag.ctl("status"); err != nil {
		t.Errorf("agentctl status unhealthy after the move: %v\n%s", err, st)
	}
	img := srvA.failover("so-host", id, filepath.Base(loop.Path))
	sameContent(t, loop.Path, img)

	// ps2 gone: lifeboat machines shows it, with the remedy.
	so.b.kill9()
	waitFor(t, "machines shows the silent process server", func() bool {
		out, err := srvA.lifeboat("machines")
		return err == nil && strings.Contains(out, "process server ps2") && strings.Contains(out, "lifeboat move")
	})
	if out, err := exec.Command(bin("lifeboat"), "--data", srvA.data, "servers").CombinedOutput(); err != nil || !strings.Contains(string(out), "UNHEALTHY") {
		t.Errorf("lifeboat servers after ps2 died: %v\n%s", err, out)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dumpOnFailure logs, when the test failed, the agent's status and the
// stacks of all its goroutines (SIGQUIT), so a stall shows where the agent
// waits.
func (a *agent) dumpOnFailure() {
	if !a.t.Failed() || !a.p.running() {
		return
	}
	st, _ := a.ctl("status")
	js, _ := a.ctl("status", "--json")
	a.t.Logf("--- agent status at the failure:\n%s\n%s", st, js)
	before, _ := os.ReadFile(a.p.log)
	logTail := before[max(0, len(before)-30000):]
	a.t.Logf("--- agent log before the failure (last %d bytes):\n%s", len(logTail), logTail)
	a.p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-a.p.done:
	case <-time.After(10 * time.Second):
	}
	b, _ := os.ReadFile(a.p.log)
	if len(b) > len(before) {
		b = b[len(before):]
	}
	if len(b) > 60000 {
		b = b[:60000]
	}
	a.t.Logf("--- agent goroutines at the failure:\n%s", b)
}
