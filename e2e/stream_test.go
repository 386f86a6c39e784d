//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// agentWritten returns the bytes the agent process has caused to be
// written to storage (write_bytes of /proc/PID/io): its state directory is
// on a block device (t.TempDir()), so a spool's segments count there.
func (a *agent) written() int64 {
	a.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", a.p.cmd.Process.Pid))
	if err != nil {
		a.t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				a.t.Fatal(err)
			}
			return n
		}
	}
	a.t.Fatalf("no write_bytes in /proc/PID/io: %q", b)
	return 0
}

// TestStreamWritesNoData: without a spool (the default) the agent writes
// next to nothing on its host while the disk churns — its state file at
// each point, not the changed data (at most 2 % of the bytes churned,
// measured as the agent's write_bytes) — and the point after the churn
// rebuilds the disk exactly. The same churn with a spool shows the
// measurement sees a spool's writes (at least half the bytes churned).
func TestStreamWritesNoData(t *testing.T) {
	requireE2E(t)
	const size, churn = 128 * mib, 48 * mib
	for _, c := range []struct {
		name      string
		args      []string
		min, max  float64 // of the agent's bytes written per byte churned
		wantModes string
	}{
		{"stream", nil, 0, 0.02, "stream"},
		{"spool", []string{"--spool-bytes", "1073741824"}, 0.5, 10, "spool"},
	} {
		t.Run(c.name, func(t *testing.T) {
			loop := testenv.NewLoop(t, size)
			srv := startServer(t)
			ag := startAgent(t, srv, "stream-"+c.name, []string{loop.Path}, c.args...)
			ag.bookmark() // initial sync done and durable
			before := ag.written()
			for i := int64(0); i < churn/mib; i++ {
				writeRandom(t, loop.Path, (i*7%(size/mib))*mib, mib, 100+i)
				time.Sleep(20 * time.Millisecond) // spread over rounds
			}
			id := ag.bookmark()
			ratio := float64(ag.written()-before) / churn
			t.Logf("%s: agent wrote %.4f bytes per byte churned", c.name, ratio)
			if ratio < c.min || ratio > c.max {
				t.Errorf("%s: agent wrote %.4f bytes per byte churned, want within [%g, %g]", c.name, ratio, c.min, c.max)
			}
			st, _ := ag.statusJSON()
			if !strings.Contains(st, `"mode": "`+c.wantModes+`"`) {
				t.Errorf("status has no disk in mode %q:\n%s", c.wantModes, st)
			}
			sameContent(t, loop.Path, srv.failover("stream-"+c.name, id, filepath.Base(loop.Path)))
		})
	}
}

// TestMetadataModeCatchesUp: without a spool, the process server
// unreachable, the agent holds at most --memory-bytes of segments, then
// tracks the changed regions only: agentctl status names the metadata
// mode and why (exit code 1); once the server is back it reads them,
// streams again, and the next point is identical to the disk.
func TestMetadataModeCatchesUp(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 64*mib)
	srv := startServer(t)
	ag := startAgent(t, srv, "metadata-host", []string{loop.Path}, "--memory-bytes", "4194304")
	ag.bookmark()

	srv.proxy.cut()
	for i := int64(0); i < 12; i++ {
		writeRandom(t, loop.Path, i*4*mib, mib, 10+i)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := ag.statusJSON()
		if strings.Contains(st, `"mode": "metadata"`) && strings.Contains(st, `"code": "metadata-mode"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metadata mode in status with the server cut off:\n%s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st, healthy := ag.status()
	if healthy {
		t.Error("status healthy in metadata mode")
	}
	if st.Disks[0].PendingBytes == 0 {
		t.Errorf("nothing pending in metadata mode: %+v", st.Disks[0])
	}
	if st.Disks[0].Spool.Bytes > 4*mib+2*mib {
		t.Errorf("%d bytes held in memory, bound 4 MiB", st.Disks[0].Spool.Bytes)
	}
	srv.proxy.restore()
	ag.waitFor("catching up", 2*time.Minute, func(s agentStatus) bool {
		return s.Healthy && s.Disks[0].PendingBytes == 0 && s.Disks[0].Spool.Bytes == 0
	})
	id := ag.bookmark()
	sameContent(t, loop.Path, srv.failover("metadata-host", id, filepath.Base(loop.Path)))
	if out, _ := ag.statusJSON(); !strings.Contains(out, `"mode": "stream"`) {
		t.Errorf("not streaming again after catching up:\n%s", out)
	}

	// An orderly stop sends what is in memory: the next start continues
	// from the pinned tracker, with no resync, and misses nothing written
	// while the agent was stopped.
	writeRandom(t, loop.Path, 50*mib, mib, 99)
	ag.stopClean()
	writeRandom(t, loop.Path, 60*mib, mib, 98)
	ag.startAgain()
	st, _ = ag.status()
	if d := st.Disks[0]; d.State != "protected" || d.EqualBytes != 0 {
		t.Errorf("after an orderly stop: %+v, want protected with no resync", d)
	}
	id = ag.bookmark()
	sameContent(t, loop.Path, srv.failover("metadata-host", id, filepath.Base(loop.Path)))
}

// statusJSON returns agentctl status --json as text, and whether it exited 0.
func (a *agent) statusJSON() (string, bool) {
	out, err := a.ctl("status", "--json")
	return out, err == nil
}

// TestStreamServerKilledUnderLoad: without a spool, the process server
// killed (kill -9) while segments stream to it under churn, and started
// again: the segments it had not acknowledged are sent again from memory,
// and the point after the churn is identical to the disk.
func TestStreamServerKilledUnderLoad(t *testing.T) {
	requireE2E(t)
	const size = 64 * mib
	loop := testenv.NewLoop(t, size)
	srv := startServer(t)
	ag := startAgent(t, srv, "kill-server", []string{loop.Path})
	ag.bookmark()
	start := time.Now()
	restarted := false
	for i := int64(0); time.Since(start) < 3*time.Second; i++ {
		writeRandom(t, loop.Path, (i*13%(size/mib))*mib, mib, 1000+i)
		if !restarted && time.Since(start) > 1500*time.Millisecond {
			srv.restart() // segments in flight are lost with it
			restarted = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	id := ag.bookmark()
	sameContent(t, loop.Path, srv.failover("kill-server", id, filepath.Base(loop.Path)))
}
