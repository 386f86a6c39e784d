//go:build linux

package e2e

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

type diskStatus struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	PendingBytes int64   `json:"pending_bytes"`
	SentBytes    int64   `json:"sent_bytes"`
	EqualBytes   int64   `json:"equal_bytes"`
	Progress     float64 `json:"progress"`
	Spool        struct {
		Bytes int64 `json:"queued_bytes"`
	} `json:"spool"`
}

type agentStatus struct {
	Healthy  bool `json:"healthy"`
	Problems []struct {
		What   string `json:"what"`
		Remedy string `json:"remedy"`
	} `json:"problems"`
	Disks []diskStatus `json:"disks"`
}

func (a *agent) status() (agentStatus, bool) {
	a.t.Helper()
	cmd := exec.Command(bin("agentctl"), "status", "--state", a.state, "--json")
	out, err := cmd.Output()
	var st agentStatus
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		a.t.Fatalf("agentctl status --json: %v %v: %q", err, jerr, out)
	}
	// The exit code tells monitoring scripts whether all is well.
	if (err == nil) != st.Healthy {
		a.t.Fatalf("agentctl status exit %v but healthy=%v", err, st.Healthy)
	}
	return st, st.Healthy
}

func (a *agent) waitFor(what string, timeout time.Duration, cond func(agentStatus) bool) agentStatus {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := a.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out waiting for %s; status: %+v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeRandom(t *testing.T, dev string, off, n int64, seed int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	rand.New(rand.NewSource(seed)).Read(buf)
	if _, err := f.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
}

// TestResyncSendsOnlyDifferences: an agent killed with its pins lost (a
// bpffs remount; a reboot is the same), a disk changed while it was down,
// the agent started again: it resyncs by comparing block hashes with the
// replica and sends only what changed. (A kill -9 that keeps the pins
// reads again only what was pending, with no resync:
// TestAgentKill9ResyncsOnlyPending.)
func TestResyncSendsOnlyDifferences(t *testing.T) {
	requireE2E(t)
	const size = 64 * mib
	loop := testenv.NewLoop(t, size)
	writeRandom(t, loop.Path, 0, size, 1) // no zero blocks to skip
	srv := startServer(t)
	ag := startAgent(t, srv, "resync-host", []string{loop.Path})
	ag.bookmark()

	ag.p.kill9()
	pins := argAfter(ag.p.args, "--pin-dir")
	ents, _ := os.ReadDir(pins)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(pins, e.Name()))
	}
	const changed = 2 * mib
	writeRandom(t, loop.Path, 20*mib, changed, 2) // while no agent runs
	ag.restart()
	st := ag.waitFor("the resync to end", 2*time.Minute, func(s agentStatus) bool {
		return len(s.Disks) == 1 && s.Disks[0].State == "protected"
	})
	d := st.Disks[0]
	t.Logf("resync: sent %d bytes, found %d bytes equal", d.SentBytes, d.EqualBytes)
	if d.SentBytes < changed || d.SentBytes > changed+4*mib {
		t.Errorf("resync sent %d bytes for %d changed; want only the changed blocks (and a few in flight)", d.SentBytes, changed)
	}
	if d.EqualBytes < size-changed-4*mib {
		t.Errorf("resync found only %d bytes equal of %d", d.EqualBytes, size)
	}
	id := ag.bookmark()
	sameContent(t, loop.Path, srv.failover("resync-host", id, filepath.Base(loop.Path)))
}

// TestSpoolFullCatchesUp: the process server unreachable and the spool
// full, the agent keeps only the dirty set, says so in agentctl status
// (exit code 1), and catches up once the server is back: nothing lost.
func TestSpoolFullCatchesUp(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 64*mib)
	srv := startServer(t)
	ag := startAgent(t, srv, "spool-host", []string{loop.Path}, "--spool-bytes", "4194304")
	ag.bookmark()

	srv.proxy.cut()
	for i := int64(0); i < 12; i++ {
		writeRandom(t, loop.Path, i*4*mib, mib, 10+i)
	}
	st := ag.waitFor("spool full in status", time.Minute, func(s agentStatus) bool {
		for _, p := range s.Problems {
			if strings.Contains(p.What, "spool full") && p.Remedy != "" {
				return true
			}
		}
		return false
	})
	if st.Healthy {
		t.Fatal("status healthy with a full spool and no server")
	}
	if st.Disks[0].PendingBytes == 0 {
		t.Errorf("nothing pending while the spool is full: the dirty set was dropped? %+v", st.Disks[0])
	}
	srv.proxy.restore()
	ag.waitFor("catching up", 2*time.Minute, func(s agentStatus) bool {
		return s.Healthy && s.Disks[0].PendingBytes == 0 && s.Disks[0].Spool.Bytes == 0
	})
	id := ag.bookmark()
	sameContent(t, loop.Path, srv.failover("spool-host", id, filepath.Base(loop.Path)))
}

// TestRefusesStateOnProtectedDisk: the agent's state and spool on the disk
// it protects would replicate their own writes forever: refused.
func TestRefusesStateOnProtectedDisk(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 64*mib)
	run(t, "mkfs.ext4", "-q", loop.Path)
	mnt := mount(t, loop.Path)
	srv := startServer(t)
	cmd := exec.Command(bin("lifeboat-agent"), "run", "--server", srv.api, "--passphrase-file", filepath.Join(srv.data, "passphrase"),
		"--state", filepath.Join(mnt, "state"), "--name", "self-host", "--disk", loop.Path, "--pin-dir", testenv.BPFFSDir(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("agent accepted its state on the protected disk:\n%s", out)
	}
	if !strings.Contains(string(out), "protected disk") || !strings.Contains(string(out), "--state") {
		t.Fatalf("unclear error for state on a protected disk:\n%s", out)
	}
}
