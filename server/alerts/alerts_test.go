package alerts_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// alertsCfg is a server with short thresholds and a fast evaluation.
func alertsCfg(t *testing.T, dir string) server.Config {
	cfg := servertest.Config(t, dir)
	cfg.AlertInterval = 50 * time.Millisecond
	cfg.AlertHeartbeat = 300 * time.Millisecond
	cfg.AlertRPO = time.Hour
	cfg.AlertCacheFree = -1
	cfg.MetricsAddr = "127.0.0.1:0"
	return cfg
}

func findAlert(as []api.Alert, kind, machine string) *api.Alert {
	for i := range as {
		if as[i].Alert == kind && as[i].Machine == machine {
			return &as[i]
		}
	}
	return nil
}

func alerts(t *testing.T, adm *client.Admin) api.Alerts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := adm.Alerts(ctx)
	if err != nil {
		t.Fatalf("GET /v1/alerts: %v", err)
	}
	return as
}

func scrape(t *testing.T, s *server.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestAlertHeartbeatLostAndBack: an agent that stops talking raises
// heartbeat-lost (in the API, in the machine's listing and as a metric);
// its next request clears it.
func TestAlertHeartbeatLostAndBack(t *testing.T) {
	dir := servertest.Init(t)
	cfg := alertsCfg(t, dir)
	// Long enough that the steps after the agent is back (a few admin
	// calls, a scrape) never take it, even under -race on a busy
	// machine: the count of raised alerts below must stay 1.
	cfg.AlertHeartbeat = 2 * time.Second
	s := servertest.Start(t, cfg)
	adm := servertest.Admin(t, s, dir)
	ag := servertest.Register(t, s, dir, "m1")
	ctx := context.Background()
	if _, err := ag.Process.SetMachine(ctx, []api.DiskSpec{{Name: "d0", Size: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	if a := findAlert(alerts(t, adm).Active, api.AlertHeartbeat, "m1"); a != nil {
		t.Fatalf("heartbeat alert right after contact: %+v", a)
	}
	// The agent goes quiet.
	var lost *api.Alert
	servertest.WaitFor(t, "heartbeat-lost", func() bool {
		lost = findAlert(alerts(t, adm).Active, api.AlertHeartbeat, "m1")
		return lost != nil
	})
	if lost.Severity != api.SeverityCritical || lost.Remedy == "" || !strings.Contains(lost.Message, "last contact") || lost.Cleared != nil {
		t.Errorf("alert = %+v", lost)
	}
	ms, err := adm.Machines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || findAlert(ms[0].Alerts, api.AlertHeartbeat, "m1") == nil {
		t.Errorf("machines lists no heartbeat alert: %+v", ms)
	}
	if m := scrape(t, s); !strings.Contains(m, `lifeboat_alert_active{alert="heartbeat-lost",machine="m1"} 1`) ||
		!strings.Contains(m, `lifeboat_server_alert_active{alert="heartbeat-lost",machine="m1"} 1`) {
		t.Errorf("metric lifeboat_alert_active missing:\n%s", grepLines(m, "lifeboat_alert"))
	}
	// The agent is back: one request clears it without waiting.
	if _, err := ag.Process.DiskState(ctx, "d0"); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "heartbeat cleared", func() bool {
		s.Alerts(ctx)
		return findAlert(alerts(t, adm).Active, api.AlertHeartbeat, "m1") == nil
	})
	as := alerts(t, adm)
	c := findAlert(as.Cleared, api.AlertHeartbeat, "m1")
	if c == nil || c.Cleared == nil || c.Cleared.Before(c.Since) {
		t.Fatalf("cleared alert not listed: %+v", as.Cleared)
	}
	if m := scrape(t, s); strings.Contains(m, `lifeboat_alert_active{alert="heartbeat-lost"`) ||
		!strings.Contains(m, `lifeboat_server_alerts_raised_total{alert="heartbeat-lost"} 1`) {
		t.Errorf("metrics after clearing:\n%s", grepLines(m, "alert"))
	}
}

// TestAlertCacheLow: a threshold above the free space raises
// cache-space-low; the default threshold does not.
func TestAlertCacheLow(t *testing.T) {
	dir := servertest.Init(t)
	cfg := alertsCfg(t, dir)
	cfg.AlertCacheFree = 1 << 62 // more than any disk has free
	s := servertest.Start(t, cfg)
	adm := servertest.Admin(t, s, dir)
	a := findAlert(alerts(t, adm).Active, api.AlertCacheLow, "")
	if a == nil {
		t.Fatal("no cache-space-low alert with a threshold above the free space")
	}
	if a.Severity != api.SeverityCritical || !strings.Contains(a.Message, "free in the data directory") || !strings.Contains(a.Remedy, "free space") {
		t.Errorf("alert = %+v", a)
	}
	if m := scrape(t, s); !strings.Contains(m, `lifeboat_alert_active{alert="cache-space-low",machine=""} 1`) {
		t.Errorf("metric missing:\n%s", grepLines(m, "lifeboat_alert"))
	}
	s.Close()

	// The same data directory with a threshold of 1 byte: no alert.
	cfg = alertsCfg(t, dir)
	cfg.AlertCacheFree = 1
	s = servertest.Start(t, cfg)
	adm = servertest.Admin(t, s, dir)
	if a := findAlert(alerts(t, adm).Active, api.AlertCacheLow, ""); a != nil {
		t.Fatalf("cache-space-low with a 1-byte threshold: %+v", a)
	}
}

// TestAlertRPOAndResync: a machine whose newest point is older than the
// RPO threshold raises rpo-breached until a new point is listed; a hashes
// request (only a resync asks for them) raises resync until the window
// passes.
func TestAlertRPOAndResync(t *testing.T) {
	dir := servertest.Init(t)
	cfg := alertsCfg(t, dir)
	cfg.AlertHeartbeat = -1
	cfg.AlertRPO = 2 * time.Second
	cfg.ResyncWindow = 500 * time.Millisecond
	s := servertest.Start(t, cfg)
	adm := servertest.Admin(t, s, dir)
	ag := servertest.Register(t, s, dir, "m1")
	ctx := context.Background()
	const size = 1 << 20
	if _, err := ag.Process.SetMachine(ctx, []api.DiskSpec{{Name: "d0", Size: size}}); err != nil {
		t.Fatal(err)
	}
	old := servertest.Cut("p-old")
	old.Time = time.Now().Add(-time.Minute)
	seg := servertest.Segment{Machine: "m1", Disk: "d0", DiskSize: size, Seq: 0, Gen: 1,
		Writes: []servertest.Write{{Off: 0, Data: make([]byte, 4096)}}, Cuts: []hrlfmt.Cut{old}}
	if _, err := ag.Process.PutSegmentFile(ctx, "d0", 0, seg.Build(t, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	var rpo *api.Alert
	servertest.WaitFor(t, "rpo-breached", func() bool {
		rpo = findAlert(alerts(t, adm).Active, api.AlertRPO, "m1")
		return rpo != nil
	})
	if !strings.Contains(rpo.Message, "newest recovery point is") || rpo.Remedy == "" {
		t.Errorf("alert = %+v", rpo)
	}
	m := scrape(t, s)
	for _, want := range []string{`lifeboat_server_points{kind="crash",machine="m1"} 1`, `lifeboat_server_segments_received_total{disk="d0",machine="m1"} 1`, `lifeboat_server_rpo_seconds{machine="m1"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "lifeboat_server"))
		}
	}
	// A fresh point clears it.
	seg = servertest.Segment{Machine: "m1", Disk: "d0", DiskSize: size, Seq: 1, Gen: 2, Cuts: []hrlfmt.Cut{servertest.Cut("p-new")}}
	if _, err := ag.Process.PutSegmentFile(ctx, "d0", 1, seg.Build(t, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "rpo cleared", func() bool { return findAlert(alerts(t, adm).Active, api.AlertRPO, "m1") == nil })

	// Resync: the agent compares blocks.
	if _, err := ag.Process.Hashes(ctx, "d0", 0, 128<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	a := findAlert(alerts(t, adm).Active, api.AlertResync, "m1")
	if a == nil || a.Disk != "d0" || a.Severity != api.SeverityWarning {
		t.Fatalf("resync alert = %+v", a)
	}
	servertest.WaitFor(t, "resync cleared", func() bool { return findAlert(alerts(t, adm).Active, api.AlertResync, "m1") == nil })
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
