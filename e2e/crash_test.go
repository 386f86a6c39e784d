//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestAgentKill9ResyncsOnlyPending: the agent killed with SIGKILL under
// fio churn, in each phase of a round (LIFEBOAT_AGENT_CRASH_AT makes it
// kill itself there), and once from outside right after its status was
// read: the next start adopts the pinned tracker, reads again what was
// pending (the regions it persisted plus the kernel's change log), with no
// resync by hashes; the point after the churn is identical to the disk,
// and what was read again is far below the disk's size (from outside:
// at most twice the backlog the status showed, plus what the churn wrote
// in between).
func TestAgentKill9ResyncsOnlyPending(t *testing.T) {
	requireE2E(t)
	const size = 256 * mib
	for _, phase := range []string{"cut:4", "persisted:4", "settled:4", "journaled:6", "read:4", "sealed:4", "point:2", "outside"} {
		t.Run(strings.Split(phase, ":")[0], func(t *testing.T) {
			loop := testenv.NewLoop(t, size)
			srv := startServer(t)
			name := "crash-" + strings.Split(phase, ":")[0]
			ag := startAgent(t, srv, name, []string{loop.Path}, "--point-interval", "1s", "--group-listen", "")
			ag.bookmark()

			fio := exec.Command("fio", "--name=churn", "--thread", "--filename="+loop.Path, "--rw=randwrite", "--bs=64k",
				"--direct=1", "--ioengine=psync", "--rate=8m", "--time_based", "--runtime=300", "--randseed=7")
			if err := fio.Start(); err != nil {
				t.Fatal(err)
			}
			stopFio := func() {
				if fio.Process != nil {
					fio.Process.Kill()
					fio.Wait()
					fio.Process = nil
				}
			}
			t.Cleanup(stopFio)
			time.Sleep(1500 * time.Millisecond)

			var backlog int64
			if phase == "outside" {
				backlog = ag.backlog()
				ag.p.kill9()
			} else {
				// Stop it, then start it again set to kill itself in
				// the phase: the crash comes from a process that ran
				// with the churn from its start.
				ag.p.kill9()
				t.Setenv("LIFEBOAT_AGENT_CRASH_AT", phase)
				os.Remove(filepath.Join(ag.state, "agent.sock"))
				ag.p.start()
				select {
				case <-ag.p.done:
				case <-time.After(90 * time.Second):
					t.Fatalf("the agent did not reach phase %s within 90 s:\n%s", phase, ag.p.tail())
				}
				os.Setenv("LIFEBOAT_AGENT_CRASH_AT", "")
				if !strings.Contains(ag.p.tail(), "adopted the pinned tracker") && !strings.Contains(ag.p.tail(), "reading again only what was pending") {
					t.Fatalf("the agent that was to crash did not start from the pinned tracker:\n%s", ag.p.tail())
				}
			}
			os.Remove(filepath.Join(ag.state, "agent.sock"))
			ag.p.start()
			ag.waitAPI()

			log := lastRun(t, ag.p.log)
			if strings.Contains(log, "tracking gap: resyncing") {
				t.Fatalf("a kill -9 in phase %s made a resync:\n%s", phase, log)
			}
			m := regexp.MustCompile(`"recovered_bytes":(\d+)`).FindStringSubmatch(log)
			if m == nil {
				t.Fatalf("no recovery after the kill in phase %s:\n%s", phase, log)
			}
			recovered, _ := strconv.ParseInt(m[1], 10, 64)
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "recovered_bytes") {
					t.Log(l)
				}
			}
			t.Logf("phase %s: read again %d bytes after the kill (disk %d; backlog shown before an outside kill %d)", phase, recovered, int64(size), backlog)
			if recovered > size/4 {
				t.Errorf("phase %s: %d bytes read again, a quarter of the disk or more", phase, recovered)
			}
			// From outside, the churn between the status and the kill
			// (8 MB/s, milliseconds) is allowed for.
			if phase == "outside" && recovered > 2*backlog+mib {
				t.Errorf("read again %d bytes after a kill with %d bytes of backlog shown: more than twice that plus 1 MiB", recovered, backlog)
			}
			time.Sleep(time.Second) // churn after the restart too
			stopFio()
			id := ag.bookmark()
			st, _ := ag.status()
			if d := st.Disks[0]; d.State != "protected" || d.EqualBytes != 0 {
				t.Errorf("after the kill in phase %s: %+v, want protected and no resync", phase, d)
			}
			sameContent(t, loop.Path, srv.failover(name, id, filepath.Base(loop.Path)))
		})
	}
}

// backlog returns what agentctl status shows as not yet durable on the
// server: pending (changes not read yet, folded or not) plus the segments
// held in memory (the mode's reason says how many bytes, open segment
// included).
func (a *agent) backlog() int64 {
	a.t.Helper()
	out, _ := a.statusJSON()
	var st struct {
		Disks []struct {
			Pending    int64  `json:"pending_bytes"`
			ModeReason string `json:"mode_reason"`
		} `json:"disks"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Disks) == 0 {
		a.t.Fatalf("agentctl status --json: %v: %q", err, out)
	}
	m := regexp.MustCompile(`\((\d+) of \d+ bytes held\)`).FindStringSubmatch(st.Disks[0].ModeReason)
	if m == nil {
		a.t.Fatalf("no bytes held in the mode's reason: %q", st.Disks[0].ModeReason)
	}
	held, _ := strconv.ParseInt(m[1], 10, 64)
	return st.Disks[0].Pending + held
}

// lastRun returns the part of a process log written by its last start.
func lastRun(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.LastIndex(s, "\n=== "); i >= 0 {
		s = s[i:]
	}
	return s
}
