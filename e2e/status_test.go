//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lbagent "github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// fullStatus runs agentctl status --json and returns it with the exit code.
func (a *agent) fullStatus() (lbagent.Status, int) {
	a.t.Helper()
	out, err := exec.Command(bin("agentctl"), "status", "--state", a.state, "--json").Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		a.t.Fatal(err)
	}
	var st lbagent.Status
	if err := json.Unmarshal(out, &st); err != nil {
		a.t.Fatalf("agentctl status --json: %v: %q", err, out)
	}
	return st, code
}

func (a *agent) waitStatus(what string, timeout time.Duration, cond func(lbagent.Status, int) bool) (lbagent.Status, int) {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, code := a.fullStatus()
		if cond(st, code) {
			return st, code
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", " ")
			a.t.Fatalf("timed out waiting for %s; exit %d, status:\n%s", what, code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func problem(st lbagent.Status, code string) *lbagent.Problem {
	for i, p := range st.Problems {
		if p.Code == code {
			return &st.Problems[i]
		}
	}
	return nil
}

// stopClean stops the agent with SIGTERM (an orderly stop).
func (a *agent) stopClean() {
	a.t.Helper()
	a.p.stop()
	os.Remove(filepath.Join(a.state, "agent.sock"))
}

func (a *agent) startAgain() {
	a.t.Helper()
	a.p.start()
	a.waitAPI()
}

// TestStatusStates drives a real agent through the states agentctl status
// reports — protected, initial-sync, spool full, server unreachable,
// tracking gap with its resync — and checks each with its remedy and exit
// code.
func TestStatusStates(t *testing.T) {
	requireE2E(t)
	const size = 64 * mib
	loop := testenv.NewLoop(t, size)
	writeRandom(t, loop.Path, 0, size, 7)
	srv := startServer(t)
	ag := startAgent(t, srv, "status-host", []string{loop.Path}, "--spool-bytes", "4194304")
	ag.bookmark()

	// Protected and healthy: exit 0, with everything an operator looks at.
	st, _ := ag.waitStatus("protected and healthy", time.Minute, func(s lbagent.Status, c int) bool {
		return c == 0 && len(s.Disks) == 1 && s.Disks[0].State == lbagent.StateProtected && s.Server.Connected
	})
	if st.Disks[0].Sync != nil || st.Disks[0].Progress != 1 {
		t.Errorf("protected disk shows a sync: %+v", st.Disks[0])
	}
	uname := strings.TrimSpace(run(t, "uname", "-r"))
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if st.Kernel != uname || st.BootID != strings.TrimSpace(string(boot)) {
		t.Errorf("kernel %q boot id %q, want %q %q", st.Kernel, st.BootID, uname, boot)
	}
	if len(st.Tracker.Programs) != 5 {
		t.Errorf("BPF programs: %+v, want the 4 attached and cut", st.Tracker.Programs)
	}
	for _, p := range st.Tracker.Programs {
		if p.ID == 0 {
			t.Errorf("program %s has no id", p.Name)
		} else if out, err := exec.Command("bpftool", "prog", "show", "id", itoa(p.ID)).CombinedOutput(); err == nil && !strings.Contains(string(out), "tp_btf") && !strings.Contains(string(out), "tracing") && p.Name != "cut" {
			t.Errorf("bpftool prog show id %d: %s", p.ID, out)
		}
	}
	if st.Certificate == nil || st.Certificate.Subject != "status-host" || st.Certificate.DaysLeft < lbagent.CertWarnDays {
		t.Errorf("certificate: %+v", st.Certificate)
	}
	if st.Server.Address == "" || st.LastPoint == nil {
		t.Errorf("server %+v, last point %+v", st.Server, st.LastPoint)
	}
	pins := st.Tracker.PinDir

	// Initial sync, held by an unreachable server: an orderly stop, the
	// disk's saved state set back to the start of an initial sync, the
	// link cut, the agent started again.
	ag.stopClean()
	setDiskState(t, ag.state, filepath.Base(loop.Path), size)
	srv.proxy.cut()
	ag.startAgain()
	st, code := ag.waitStatus("initial sync stuck on a full spool and no server", 2*time.Minute, func(s lbagent.Status, c int) bool {
		return problem(s, lbagent.ProblemServerUnreachable) != nil && problem(s, lbagent.ProblemSpoolFull) != nil
	})
	d := st.Disks[0]
	if code != 1 || st.Healthy || d.State != lbagent.StateInitialSync || d.Sync == nil || d.Sync.TotalBytes != size || d.Progress >= 1 {
		t.Errorf("exit %d, disk %+v sync %+v", code, d, d.Sync)
	}
	if p := problem(st, lbagent.ProblemServerUnreachable); !strings.Contains(p.Remedy, "lifeboat-server runs") || st.Server.Connected || st.Server.ErrorSince.IsZero() {
		t.Errorf("unreachable: %+v, server %+v", p, st.Server)
	}
	if p := problem(st, lbagent.ProblemSpoolFull); !strings.Contains(p.Remedy, "nothing is lost") || d.Tracker.Mode != "bitmap" {
		t.Errorf("spool full: %+v, tracker mode %q", p, d.Tracker.Mode)
	}
	srv.proxy.restore()
	ag.waitStatus("initial sync done", 2*time.Minute, func(s lbagent.Status, c int) bool {
		return c == 0 && s.Disks[0].State == lbagent.StateProtected
	})

	// Tracking gap: the tracker's pins removed while the agent was stopped.
	// The resync is held (no server to compare with) so it can be seen.
	ag.stopClean()
	ents, err := os.ReadDir(pins)
	if err != nil || len(ents) == 0 {
		t.Fatalf("pins in %s: %v %v", pins, ents, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(pins, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	srv.proxy.cut()
	ag.startAgain()
	st, code = ag.waitStatus("tracking gap", time.Minute, func(s lbagent.Status, c int) bool {
		return problem(s, lbagent.ProblemTrackingGap) != nil
	})
	d = st.Disks[0]
	if code != 1 || d.State != lbagent.StateResync || d.Sync == nil || !strings.Contains(d.Sync.Reason, "tracker state lost") {
		t.Errorf("exit %d, disk %+v, sync %+v", code, d, d.Sync)
	}
	if p := problem(st, lbagent.ProblemTrackingGap); !strings.Contains(p.Remedy, "only blocks that differ") {
		t.Errorf("tracking gap remedy: %+v", p)
	}
	srv.proxy.restore()
	st, _ = ag.waitStatus("resync done", 2*time.Minute, func(s lbagent.Status, c int) bool {
		return c == 0 && s.Disks[0].State == lbagent.StateProtected
	})
	// The gap is repaired once: the disk stays protected, not resynced
	// again and again.
	time.Sleep(3 * time.Second)
	if st2, code := ag.fullStatus(); code != 0 || st2.Disks[0].State != lbagent.StateProtected {
		t.Errorf("after the resync: exit %d, disk %+v", code, st2.Disks[0])
	}
	logb, _ := os.ReadFile(ag.p.log)
	runs := strings.Split(string(logb), "=== ")
	if n := strings.Count(runs[len(runs)-1], "tracking gap: resyncing"); n != 1 {
		t.Errorf("the agent started %d resyncs for one tracking gap, want 1", n)
	}
	id := ag.bookmark()
	sameContent(t, loop.Path, srv.failover("status-host", id, filepath.Base(loop.Path)))
}

// TestStatusNoAgent: no agent on the socket is exit code 3 with a remedy.
func TestStatusNoAgent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin("agentctl"), "status", "--state", dir, "--json")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want 3", err)
	}
	var st lbagent.Status
	if err := json.Unmarshal(out, &st); err != nil || len(st.Problems) != 1 || st.Problems[0].Code != "agent-not-running" || st.Problems[0].Remedy == "" {
		t.Fatalf("%v: %s", err, out)
	}
}

// setDiskState rewrites the saved state of a stopped agent's disk to the
// start of an initial sync.
func setDiskState(t *testing.T, state, disk string, size int64) {
	t.Helper()
	path := filepath.Join(state, "agent.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	d := m["disks"].(map[string]any)[disk].(map[string]any)
	d["state"] = "initial-sync"
	d["sync_total"] = size
	d["sync_done"] = 0
	d["backlog"] = [][2]int64{{0, size}}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func itoa(n uint32) string { return strconv.Itoa(int(n)) }
