//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// Metric names documented in docs/metrics.md that a running agent and
// server must always expose (those that exist only in some states, such
// as an alert or a tracker mode, are checked where they apply).
var (
	agentMetrics = []string{
		"lifeboat_agent_healthy", "lifeboat_agent_problems", "lifeboat_agent_disk_state", "lifeboat_agent_disk_size_bytes",
		"lifeboat_agent_sync_progress_ratio", "lifeboat_agent_pending_bytes", "lifeboat_agent_tracked_bytes_total",
		"lifeboat_agent_tracked_writes_total", "lifeboat_agent_tracker_drops_total", "lifeboat_agent_tracker_bitmap_regions_total",
		"lifeboat_agent_tracker_lost_total", "lifeboat_agent_tracker_mode", "lifeboat_agent_tracker_generation",
		"lifeboat_agent_tracker_in_flight", "lifeboat_agent_journaled_bytes_total", "lifeboat_agent_resync_equal_bytes_total",
		"lifeboat_agent_spool_bytes", "lifeboat_agent_spool_segments", "lifeboat_agent_server_connected",
		"lifeboat_agent_last_upload_timestamp_seconds", "lifeboat_agent_rpo_lag_seconds", "lifeboat_agent_rpo_lag_recent_seconds",
		"lifeboat_agent_rpo_lag_samples_total", "lifeboat_agent_last_point_timestamp_seconds", "lifeboat_agent_points_total",
		"lifeboat_agent_resyncs_total", "lifeboat_agent_sent_segments_total", "lifeboat_agent_sent_bytes_total",
		"lifeboat_agent_upload_errors_total", "lifeboat_agent_rpo_lag_observed_seconds", "lifeboat_agent_upload_duration_seconds",
	}
	serverMetrics = []string{
		"lifeboat_server_machine_state", "lifeboat_server_machine_last_seen_timestamp_seconds", "lifeboat_server_rpo_seconds",
		"lifeboat_server_latest_point_timestamp_seconds", "lifeboat_server_points", "lifeboat_server_disk_size_bytes",
		"lifeboat_server_segments_received_total", "lifeboat_server_segments_applied_total", "lifeboat_server_segments_pending",
		"lifeboat_server_apply_failing", "lifeboat_server_cache_bytes", "lifeboat_server_cache_free_bytes",
		"lifeboat_server_cache_capacity_bytes", "lifeboat_server_alerts_raised_total", "lifeboat_server_received_bytes_total",
		"lifeboat_server_process_requests_total", "lifeboat_server_alerts_evaluated_timestamp_seconds",
		"lifeboat_server_apply_duration_seconds",
	}
)

// TestMetrics scrapes /metrics of a real agent and a real server while a
// loop device is replicated: the documented names are there, bytes sent
// and churn grow after writes, the lag is finite, points are counted; then
// the agent stops and the server raises heartbeat-lost (in lifeboat
// machines and as a metric), which its return clears.
func TestMetrics(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "losetup", "dd")
	loop := testenv.NewLoop(t, 64*mib)
	disk := filepath.Base(loop.Path)
	srv := startServerWith(t, "--metrics", "127.0.0.1:0", "--heartbeat-alert", "3s", "--alert-interval", "200ms", "--log-format", "json")
	ag := startAgent(t, srv, "metrics-host", []string{loop.Path}, "--point-interval", "1s", "--metrics", "127.0.0.1:0", "--log-format", "json")
	agentURL := "http://" + logField(t, ag.p, "metrics listening", "addr") + "/metrics"
	serverURL := "http://" + srv.metrics + "/metrics"

	ag.bookmark() // initial sync done, a point listed
	a1 := scrapeURL(t, agentURL)
	if v := value(t, a1, "lifeboat_agent_disk_state", "disk", disk, "state", "protected"); v != 1 {
		t.Errorf("disk_state{protected} = %v", v)
	}
	if v := value(t, a1, "lifeboat_agent_disk_size_bytes", "disk", disk); v != 64*mib {
		t.Errorf("disk_size_bytes = %v", v)
	}
	if v := value(t, a1, "lifeboat_agent_points_total", "kind", "crash"); v < 1 {
		t.Errorf("points_total{crash} = %v", v)
	}

	// Write 4 MiB of random data, then cut a point and wait until listed.
	run(t, "dd", "if=/dev/urandom", "of="+loop.Path, "bs=1M", "count=4", "seek=8", "oflag=direct", "status=none")
	ag.bookmark()
	// The lag of a round is measured once its segment is acknowledged,
	// which the next round notices.
	var a2 map[string]*dto.MetricFamily
	waitUntil(t, 30*time.Second, "RPO lag samples", func() bool {
		a2 = scrapeURL(t, agentURL)
		return value(t, a2, "lifeboat_agent_rpo_lag_samples_total", "disk", disk) > 0
	})
	for _, name := range agentMetrics {
		if a2[name] == nil {
			t.Errorf("agent: %s missing", name)
		}
	}
	grown := func(name string, min float64) {
		t.Helper()
		before, after := value(t, a1, name, "disk", disk), value(t, a2, name, "disk", disk)
		if after-before < min {
			t.Errorf("%s grew by %v after 4 MiB of writes (from %v to %v), want at least %v", name, after-before, before, after, min)
		}
	}
	grown("lifeboat_agent_tracked_bytes_total", 4*mib)
	grown("lifeboat_agent_sent_bytes_total", 4*mib) // random data does not compress
	grown("lifeboat_agent_sent_segments_total", 1)
	lag := value(t, a2, "lifeboat_agent_rpo_lag_seconds", "disk", disk)
	if math.IsNaN(lag) || math.IsInf(lag, 0) || lag < 0 || lag > 600 {
		t.Errorf("rpo_lag_seconds = %v", lag)
	}
	if p99 := value(t, a2, "lifeboat_agent_rpo_lag_recent_seconds", "disk", disk, "quantile", "0.99"); math.IsNaN(p99) || p99 <= 0 || p99 > 600 {
		t.Errorf("rpo_lag_recent_seconds{0.99} = %v", p99)
	}
	// The histogram has the rounds' lags (the samples counter, read a
	// moment apart in the same scrape, may be one ahead or behind).
	if h := a2["lifeboat_agent_rpo_lag_observed_seconds"]; h == nil || len(h.Metric) != 1 || h.Metric[0].Histogram.GetSampleCount() < 1 ||
		h.Metric[0].Histogram.GetSampleSum() <= 0 {
		t.Errorf("rpo_lag_observed_seconds: %v", h)
	}
	if v := value(t, a2, "lifeboat_agent_points_total", "kind", "crash"); v <= value(t, a1, "lifeboat_agent_points_total", "kind", "crash") {
		t.Errorf("points_total{crash} did not grow: %v", v)
	}

	s := scrapeURL(t, serverURL)
	for _, name := range serverMetrics {
		if s[name] == nil {
			t.Errorf("server: %s missing", name)
		}
	}
	if v := value(t, s, "lifeboat_server_machine_state", "machine", "metrics-host", "state", "protected"); v != 1 {
		t.Errorf("machine_state{protected} = %v", v)
	}
	if v := value(t, s, "lifeboat_server_points", "machine", "metrics-host", "kind", "crash"); v < 2 {
		t.Errorf("server points{crash} = %v, want >= 2", v)
	}
	if v := value(t, s, "lifeboat_server_rpo_seconds", "machine", "metrics-host"); math.IsNaN(v) || v < 0 || v > 600 {
		t.Errorf("server rpo_seconds = %v", v)
	}
	if v := value(t, s, "lifeboat_server_received_bytes_total", "machine", "metrics-host"); v < 4*mib {
		t.Errorf("server received_bytes_total = %v, want >= 4 MiB", v)
	}
	if v := value(t, s, "lifeboat_server_segments_received_total", "machine", "metrics-host", "disk", disk); v < 2 {
		t.Errorf("server segments_received_total = %v", v)
	}

	// The agent stops: heartbeat-lost is raised, then cleared on return.
	ag.p.stop()
	lost := func() bool {
		out, err := srv.lifeboat("machines", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var ms []struct {
			Name   string `json:"name"`
			Alerts []struct {
				Alert, Remedy string
			} `json:"alerts"`
		}
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			t.Fatalf("machines --json: %v", err)
		}
		for _, m := range ms {
			for _, a := range m.Alerts {
				if m.Name == "metrics-host" && a.Alert == "heartbeat-lost" && a.Remedy != "" {
					return true
				}
			}
		}
		return false
	}
	waitUntil(t, 60*time.Second, "heartbeat-lost after the agent stopped", lost)
	if out, _ := srv.lifeboat("machines"); !strings.Contains(out, "ALERT heartbeat-lost metrics-host") {
		t.Errorf("lifeboat machines does not show the alert:\n%s", out)
	}
	for _, name := range []string{"lifeboat_server_alert_active", "lifeboat_alert_active"} { // the second deprecated
		if v := value(t, scrapeURL(t, serverURL), name, "alert", "heartbeat-lost", "machine", "metrics-host"); v != 1 {
			t.Errorf("%s{heartbeat-lost} = %v", name, v)
		}
	}
	os.Remove(filepath.Join(ag.state, "agent.sock"))
	ag.p.start()
	ag.waitAPI()
	waitUntil(t, 60*time.Second, "heartbeat-lost cleared after the agent came back", func() bool { return !lost() })
	if v := value(t, scrapeURL(t, serverURL), "lifeboat_alert_active", "alert", "heartbeat-lost", "machine", "metrics-host"); !math.IsNaN(v) {
		t.Errorf("lifeboat_alert_active{heartbeat-lost} still exported: %v", v)
	}
}

// startServerWith is startServer with extra flags of lifeboat-server run;
// it also reads the bound /metrics address from server.json.
func startServerWith(t *testing.T, extra ...string) *server {
	t.Helper()
	data := t.TempDir()
	if out, err := exec.Command(bin("lifeboat-server"), "init", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("lifeboat-server init: %v\n%s", err, out)
	}
	px := newProxy(t)
	s := &server{t: t, data: data, proxy: px}
	args := []string{bin("lifeboat-server"), "run", "--data", data, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--advertise", px.addr()}
	s.p = newProc(t, "server", append(args, extra...)...)
	s.start()
	b, err := os.ReadFile(filepath.Join(data, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Metrics string }
	if err := json.Unmarshal(b, &st); err != nil || st.Metrics == "" {
		t.Fatalf("server.json has no metrics address: %v: %s", err, b)
	}
	s.metrics = st.Metrics
	return s
}

// logField returns field of the first JSON log line of p whose message is
// msg, waiting for it.
func logField(t *testing.T, p *proc, msg, field string) string {
	t.Helper()
	var v string
	waitUntil(t, 30*time.Second, "log line "+msg, func() bool {
		f, err := os.Open(p.log)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == msg {
				v, _ = m[field].(string)
				return v != ""
			}
		}
		return false
	})
	return v
}

func scrapeURL(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: not the Prometheus text format: %v", url, err)
	}
	return fams
}

// value returns the value of the sample of name with the labels (pairs of
// name and value), or NaN when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	return math.NaN()
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
