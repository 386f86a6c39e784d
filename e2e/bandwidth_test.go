//go:build linux

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestBandwidthLimit runs the real agent with --bandwidth-limit 2MiB: a
// burst of 24 MiB of random writes reaches the server at the limit
// (measured over about 10 s on the server's received bytes, within 10 %),
// agentctl status shows the limit and the disk lagging because of it,
// and agentctl bandwidth changes the limit at run time.
func TestBandwidthLimit(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "losetup", "dd")
	loop := testenv.NewLoop(t, 64*mib)
	disk := filepath.Base(loop.Path)
	srv := startServerWith(t, "--metrics", "127.0.0.1:0")
	const limit = 2 * mib
	ag := startAgent(t, srv, "bw-host", []string{loop.Path}, "--point-interval", "1s", "--bandwidth-limit", "2MiB",
		"--memory-bytes", "8MiB", "--metrics", "")
	ag.bookmark() // the initial sync (zeros travel as ZERO records) is done
	serverURL := "http://" + srv.metrics + "/metrics"
	received := func() float64 {
		return value(t, scrapeURL(t, serverURL), "lifeboat_server_received_bytes_total", "machine", "bw-host")
	}
	status := func() api.AgentStatus {
		t.Helper()
		out, _ := ag.ctl("status", "--json") // exit status 1 when unhealthy
		var st api.AgentStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return st
	}

	// The server counts a request's bytes when it ends, so the rate is
	// measured from the end of one 2 MiB segment (--memory-bytes 8MiB
	// makes segments of 2 MiB) to the end of the burst, on samples every
	// 100 ms: about 10 s.
	base0 := received()
	run(t, "dd", "if=/dev/urandom", "of="+loop.Path, "bs=1M", "count=24", "seek=8", "oflag=direct", "status=none")
	var first, last time.Time
	var base, top float64
	sawLimited := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		now, b := time.Now(), received()
		if first.IsZero() && b-base0 >= 3*mib {
			first, base = now, b
		}
		if b-base0 >= 24*mib {
			last, top = now, b
			break
		}
		if !sawLimited && !first.IsZero() {
			st := status()
			if st.Bandwidth.Limit != limit || st.Bandwidth.Source != api.BandwidthFromLimit {
				t.Errorf("status bandwidth %+v, want the limit of --bandwidth-limit", st.Bandwidth)
			}
			sawLimited = len(st.Disks) == 1 && st.Disks[0].Spool.BandwidthLimited
			if text, _ := ag.ctl("status"); sawLimited && !containsAll(text, "bandwidth    2MiB/s (--bandwidth-limit)", "LAGGING because of the limit") {
				t.Errorf("agentctl status does not show the limit and the lag:\n%s", text)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.IsZero() {
		t.Fatalf("the burst did not reach the server within 2 minutes: %.0f of %d bytes", received()-base0, 24*mib)
	}
	span := last.Sub(first)
	rate := (top - base) / span.Seconds()
	t.Logf("received %.0f bytes in %s: %.0f B/s, %.1f%% of the limit", top-base, span.Round(time.Millisecond), rate, 100*rate/limit)
	if top-base < 18*mib || span < 8*time.Second {
		t.Fatalf("measured %.0f bytes over %s: too little to judge the rate", top-base, span)
	}
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Errorf("upload rate %.0f B/s, want within 10%% of %d B/s", rate, limit)
	}
	if !sawLimited {
		t.Errorf("disk %s never shown as held by the limit (spool.bandwidth_limited)", disk)
	}

	// At run time: lift the limit for a while, then back.
	out, err := ag.ctl("bandwidth", "set", "unlimited", "--for", "10m", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var b api.AgentBandwidth
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Source != api.BandwidthFromOverride || b.Limit != 0 || b.Override == nil {
		t.Fatalf("bandwidth set: %+v %v\n%s", b, err, out)
	}
	if st := status(); st.Bandwidth.Source != api.BandwidthFromOverride || st.Bandwidth.Limit != 0 {
		t.Errorf("after set unlimited: bandwidth %+v", st.Bandwidth)
	}
	if _, err := ag.ctl("bandwidth", "reset"); err != nil {
		t.Fatal(err)
	}
	if out, err := ag.ctl("bandwidth"); err != nil || !containsAll(out, "2MiB/s (--bandwidth-limit)") {
		t.Errorf("after reset: %q %v", out, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
