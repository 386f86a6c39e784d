package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// -update (or LIFEBOAT_UPDATE_GOLDEN=1) rewrites the golden files.
var update = flag.Bool("update", os.Getenv("LIFEBOAT_UPDATE_GOLDEN") == "1", "rewrite testdata/*.golden")

var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// base is a healthy, protected machine with one disk, at t0.
func base() api.AgentStatus {
	st := api.AgentStatus{
		Machine: "web1", Healthy: true, Problems: nil, Uptime: "3h0m0s",
		Time: t0, Started: t0.Add(-3 * time.Hour), Kernel: "6.18.0-lifeboat", BootID: "0f4c2b1e-6f2a-4c1e-9a4b-3d2e1f0a9b8c",
		Server:      api.AgentServerStatus{Address: "ps.example:9443", Connected: true, LastOK: t0.Add(-2 * time.Second)},
		Certificate: &api.AgentCertStatus{Subject: "web1", NotAfter: t0.Add(200 * 24 * time.Hour), DaysLeft: 200},
		Tracker: api.AgentTrackerStatus{Generation: 4711, InFlight: 2, PinDir: "/sys/fs/bpf/lifeboat-web1",
			Programs: []api.TrackerProgram{{Name: "link_rq_complete", ID: 101, LinkID: 11}, {Name: "link_bio_complete", ID: 102, LinkID: 12},
				{Name: "link_block_split", ID: 103, LinkID: 13}, {Name: "link_bio_queue", ID: 104, LinkID: 14}, {Name: "cut", ID: 105}}},
		LastPoint: &api.AgentPoint{ID: "5b0e8f7a-1c2d-4e3f-8a9b-0c1d2e3f4a5b", Time: t0.Add(-40 * time.Second), Gen: 4700, Kind: "crash"},
		LastApp:   &api.AgentPoint{ID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Time: t0.Add(-25 * time.Minute), Gen: 4100, Kind: "app", FreezeSeconds: 0.004},
		Freeze:    api.AgentLag{Samples: 3, P50: 0.004, P99: 0.006, Max: 0.006},
		Bandwidth: api.AgentBandwidth{Source: api.BandwidthNone},
	}
	st.Disks = []api.AgentDiskStatus{{
		Name: "sdb", Path: "/dev/sdb", Size: 64 << 30, State: api.AgentStateProtected, Progress: 1,
		PendingBytes: 128 << 10, SentBytes: 64 << 30,
		Spool:   api.SpoolStatus{Queued: 1, Bytes: 3 << 20, NextSeq: 812, Connected: true, LastOK: t0.Add(-2 * time.Second)},
		Lag:     api.AgentLag{Samples: 5120, P50: 0.8, P99: 2.3, Max: 4.1, Current: 0.6},
		Tracker: api.TrackerDiskStats{Disk: "/dev/sdb", Events: 91234, Bytes: 3 << 30, Mode: "metadata"},
	}}
	return st
}

func unhealthy(st *api.AgentStatus, p api.AgentProblem) {
	st.Problems = append(st.Problems, p)
	st.Healthy = false
}

// fixtures is one Status per state agentctl must show.
func fixtures() map[string]api.AgentStatus {
	m := map[string]api.AgentStatus{}
	m["protected"] = base()

	st := base()
	st.LastPoint, st.LastApp = nil, nil
	d := &st.Disks[0]
	d.State, d.Progress, d.SentBytes, d.PendingBytes = api.AgentStateInitialSync, 0.25, 16<<30, 48<<30
	d.Lag = api.AgentLag{}
	d.Sync = &api.AgentSyncStatus{Started: t0.Add(-20 * time.Minute), TotalBytes: 64 << 30, DoneBytes: 16 << 30,
		Rate: float64(16<<30) / 1200, ETA: 3600}
	m["initial-sync"] = st

	st = base()
	d = &st.Disks[0]
	d.State, d.Progress, d.SentBytes, d.EqualBytes = api.AgentStateResync, 0.5, 20<<20, 32<<30-20<<20
	d.Sync = &api.AgentSyncStatus{Reason: "machine rebooted", Started: t0.Add(-5 * time.Minute), TotalBytes: 64 << 30, DoneBytes: 32 << 30,
		Rate: float64(32<<30) / 300, ETA: 300}
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemTrackingGap, Disk: "sdb",
		What:   "sdb: tracking gap (machine rebooted): resync running, 50% compared; no new points until it ends",
		Remedy: "nothing to do: the disk is compared with its replica and only blocks that differ are sent; to avoid gaps, stop the agent with SIGTERM, never kill it"})
	m["resync"] = st

	st = base()
	d = &st.Disks[0]
	d.Spool = api.SpoolStatus{Queued: 3, Bytes: 1 << 30, NextSeq: 812, Connected: true, LastOK: t0.Add(-3 * time.Minute)}
	d.Tracker.Mode = "bitmap"
	d.Lag.Current = 190
	d.PendingBytes = 700 << 20
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemSpoolFull,
		What:   "spool full (1073741824 of 1073741824 bytes): only the dirty set is kept until the process server catches up",
		Remedy: "check the connection to the process server and its cache space (or raise --spool-bytes); nothing is lost, the backlog is sent when there is room"})
	m["spool-full"] = st

	st = base()
	d = &st.Disks[0]
	me := "segment 812: Put \"https://ps.example:9443/v1/disks/sdb/segments/812\": dial tcp 10.0.0.9:9443: connect: connection refused"
	d.Spool = api.SpoolStatus{Queued: 4, Bytes: 16 << 20, NextSeq: 812, LastError: me, ErrorSince: t0.Add(-2 * time.Minute), LastOK: t0.Add(-2 * time.Minute)}
	d.Tracker.Mode = "bitmap"
	d.PendingBytes = 700 << 20
	d.Mode = api.AgentModeMetadata
	d.ModeReason = "memory backlog full (16777216 of 16777216 bytes) since 2026-03-14T11:58:00Z: the process server does not take segments: " + me +
		"; only the changed regions are tracked, no point until they are read"
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemMetadataMode, What: d.ModeReason,
		Remedy: "check the connection to the process server and its cache space; nothing is lost, the changed regions are read when it has caught up"})
	m["metadata-mode"] = st

	st = base()
	d = &st.Disks[0]
	since := t0.Add(-7 * time.Minute)
	e := "segment 812: Put \"https://ps.example:9443/v1/disks/sdb/segments/812\": dial tcp 10.0.0.9:9443: connect: connection refused"
	d.Spool = api.SpoolStatus{Queued: 9, Bytes: 140 << 20, NextSeq: 812, Connected: false, LastError: e, ErrorSince: since, LastOK: since.Add(-time.Second)}
	d.Lag.Current = 421
	st.Server = api.AgentServerStatus{Address: "ps.example:9443", LastError: e, ErrorSince: since, LastOK: since.Add(-time.Second)}
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemServerUnreachable, Disk: "sdb",
		What:   "sdb: process server ps.example:9443 unreachable since 2026-03-14T11:53:00Z: " + e,
		Remedy: "check the network and that lifeboat-server runs; the agent retries and keeps the journal in its spool"})
	m["server-unreachable"] = st

	st = base()
	d = &st.Disks[0]
	d.State, d.Progress, d.SentBytes = api.AgentStateResync, 0.02, 0
	d.Sync = &api.AgentSyncStatus{Reason: "tracker state lost while the machine was running", Started: t0.Add(-3 * time.Second),
		TotalBytes: 64 << 30, DoneBytes: 0, ETA: -1}
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemTrackingGap, Disk: "sdb",
		What:   "sdb: tracking gap (tracker state lost while the machine was running): resync running, 0% compared; no new points until it ends",
		Remedy: "nothing to do: the disk is compared with its replica and only blocks that differ are sent; to avoid gaps, stop the agent with SIGTERM, never kill it"})
	m["tracking-gap"] = st

	st = base()
	st.Certificate = &api.AgentCertStatus{Subject: "web1", NotAfter: t0.Add(12 * 24 * time.Hour), DaysLeft: 12}
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemCertExpiring, What: "machine certificate expires in 12 days (2026-03-26)",
		Remedy: "renew it before then: move STATE/identity away and start the agent with --passphrase-file to register again (no resync)"})
	m["certificate-expiring"] = st

	// The Windows tracker: its verification sweep found changes no cut
	// had reported (docs/windows.md); they were sent, the count says so.
	st = base()
	d = &st.Disks[0]
	d.Tracker.Mode, d.Tracker.Misses = "vss-usn", 3
	m["windows-sweep-misses"] = st

	// Business hours: the schedule's window holds uploads to 10 MiB/s
	// and the disk's segments queue up behind it.
	st = base()
	st.Bandwidth = api.AgentBandwidth{Limit: 10 << 20, Source: api.BandwidthFromSchedule, Window: "Mon-Fri 08:00-18:00=10MiB",
		Configured: 100 << 20, Schedule: []string{"Mon-Fri 08:00-18:00=10MiB"}, NextChange: time.Date(2026, 3, 16, 18, 0, 0, 0, time.UTC)}
	d = &st.Disks[0]
	d.Spool = api.SpoolStatus{Queued: 41, Bytes: 640 << 20, NextSeq: 812, Connected: true, LastOK: t0.Add(-time.Second),
		BandwidthLimited: true, BandwidthLimitedSince: t0.Add(-25 * time.Minute)}
	d.Lag.Current = 1140
	unhealthy(&st, api.AgentProblem{Code: api.AgentProblemLagExceeded, Disk: "sdb",
		What:   "sdb: RPO lag 19m0s, over the threshold of 15m0s: the oldest change is not yet durable on the process server; uploads are held to 10MiB/s by the bandwidth limit (schedule window Mon-Fri 08:00-18:00=10MiB)",
		Remedy: "the disk changes faster than the bandwidth limit lets it upload: raise the limit for now with 'agentctl bandwidth set RATE' (or for good with --bandwidth-limit, --bandwidth-schedule), or accept the lag until the churn drops"})
	m["bandwidth-limited"] = st
	return m
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestStatusGolden(t *testing.T) {
	for name, st := range fixtures() {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			renderStatus(&b, st, view{})
			golden(t, "status-"+name+".txt", b.Bytes())
			b.Reset()
			renderStatus(&b, st, view{tty: true, width: 100})
			golden(t, "status-"+name+".tty", b.Bytes())
			b.Reset()
			writeJSON(&b, st)
			golden(t, "status-"+name+".json", b.Bytes())
			// Every problem shows with its remedy, and the exit code says
			// whether the machine is healthy.
			text := b.String()
			for _, p := range st.Problems {
				if p.Remedy == "" || !strings.Contains(text, p.Remedy) {
					t.Errorf("problem %s has no remedy in the output", p.Code)
				}
			}
			if want := map[bool]int{true: 0, false: 1}[st.Healthy]; exitCode(st) != want {
				t.Errorf("exit code %d, want %d", exitCode(st), want)
			}
		})
	}
}

// TestStatusJSONKeepsFields: the fields documented before this release
// stay where scripts find them.
func TestStatusJSONKeepsFields(t *testing.T) {
	var b bytes.Buffer
	writeJSON(&b, fixtures()["server-unreachable"])
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"machine", "healthy", "problems", "disks", "last_point", "last_app_point", "freeze", "tracker", "uptime",
		"time", "kernel", "boot_id", "server", "certificate"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON has no %q", k)
		}
	}
	for _, k := range []string{"generation", "in_flight", "pin_dir", "programs"} {
		if _, ok := m["tracker"].(map[string]any)[k]; !ok {
			t.Errorf("status JSON has no tracker.%s", k)
		}
	}
	d := m["disks"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "path", "size", "state", "progress", "pending_bytes", "sent_bytes", "equal_bytes", "spool", "lag", "tracker"} {
		if _, ok := d[k]; !ok {
			t.Errorf("disk JSON has no %q", k)
		}
	}
	if s := m["server"].(map[string]any); s["error_since"] != "2026-03-14T11:53:00Z" || s["connected"] != false {
		t.Errorf("server = %v", s)
	}
}

// fakeAgent serves the agent's local API on a unix socket in a temporary
// state directory; set changes what it answers.
type fakeAgent struct {
	dir string
	mu  sync.Mutex
	st  api.AgentStatus
	n   int
}

func newFakeAgent(t *testing.T, st api.AgentStatus) *fakeAgent {
	t.Helper()
	f := &fakeAgent{dir: t.TempDir(), st: st}
	l, err := net.Listen("unix", filepath.Join(f.dir, api.AgentSocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		st := f.st
		f.n++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeAgent) set(st api.AgentStatus) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

func (f *fakeAgent) asked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func TestStatusExitCodes(t *testing.T) {
	fx := fixtures()
	for _, c := range []struct {
		name string
		want int
	}{{"protected", 0}, {"initial-sync", 0}, {"resync", 1}, {"spool-full", 1}, {"server-unreachable", 1}, {"tracking-gap", 1}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeAgent(t, fx[c.name])
			var out, errOut bytes.Buffer
			code, err := run(context.Background(), []string{"status", "--state", f.dir, "--json"}, &out, &errOut)
			if err != nil || code != c.want {
				t.Fatalf("exit %d, %v; want %d", code, err, c.want)
			}
			var got api.AgentStatus
			if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Machine != "web1" {
				t.Fatalf("json %v: %s", err, out.Bytes())
			}
		})
	}
	t.Run("no-agent", func(t *testing.T) {
		dir := t.TempDir()
		var out, errOut bytes.Buffer
		code, err := run(context.Background(), []string{"status", "--state", dir, "--json"}, &out, &errOut)
		if err != nil || code != exitNoAgent {
			t.Fatalf("exit %d, %v; want %d", code, err, exitNoAgent)
		}
		var got api.AgentStatus
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Healthy || len(got.Problems) != 1 || got.Problems[0].Code != problemNoAgent || !strings.Contains(got.Problems[0].Remedy, "--state "+dir) {
			t.Errorf("no agent: %+v", got)
		}
		if !strings.Contains(errOut.String(), "remedy:") {
			t.Errorf("stderr has no remedy: %q", errOut.String())
		}
	})
}

// TestWatchAppendsLinePerChange: without a terminal, --watch prints a
// line only when the state changes, and stops when its context ends
// (SIGINT in the command).
func TestWatchAppendsLinePerChange(t *testing.T) {
	fx := fixtures()
	f := newFakeAgent(t, fx["initial-sync"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw, err := os.Pipe() // not a terminal
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	done := make(chan int)
	go func() {
		code, _ := run(ctx, []string{"status", "--state", f.dir, "--watch", "--interval", "100ms"}, pw, &bytes.Buffer{})
		pw.Close()
		done <- code
	}()
	waitAsked := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for f.asked() < n {
			if time.Now().After(deadline) {
				t.Fatalf("agent asked %d times, want %d", f.asked(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAsked(3) // the same state three times: one line
	f.set(fx["server-unreachable"])
	n := f.asked()
	waitAsked(n + 3)
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("--watch did not stop when its context ended")
	}
	b, _ := io.ReadAll(pr)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (one per state), got %d:\n%s", len(lines), b)
	}
	if !strings.Contains(lines[0], "healthy; sdb initial-sync 25%") || !strings.Contains(lines[1], "UNHEALTHY; sdb protected; server unreachable; problems: server-unreachable(sdb)") {
		t.Errorf("lines:\n%s", b)
	}
	if code != exitUnhealthy {
		t.Errorf("exit %d after an unhealthy state, want %d", code, exitUnhealthy)
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	code, err := run(context.Background(), []string{"--version"}, &out, &errOut)
	if code != 0 || err != nil || !strings.HasPrefix(out.String(), "agentctl ") {
		t.Fatalf("agentctl --version: code %d, err %v, out %q", code, err, out.String())
	}
}
