package agent

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// fakeSender answers uploads with the acks and errors it is given.
type fakeSender struct {
	Server // nil: only the methods below are called
	acks   []api.SegmentAck
	errs   []error
}

func (f *fakeSender) PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error) {
	ack, err := f.acks[0], f.errs[0]
	f.acks, f.errs = f.acks[1:], f.errs[1:]
	return ack, err
}

func (f *fakeSender) Hashes(ctx context.Context, disk string, off, n, block int64) ([][32]byte, error) {
	return nil, nil
}

func TestMetricsCountSends(t *testing.T) {
	seg := filepath.Join(t.TempDir(), "seg.hrl")
	if err := os.WriteFile(seg, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	s := m.Wrap(&fakeSender{
		acks: []api.SegmentAck{{Acked: 0}, {}, {Acked: 1, Duplicate: true}, {Acked: 1}},
		errs: []error{nil, errors.New("connection refused"), nil, nil},
	})
	ctx := context.Background()
	for seq := range 4 {
		s.PutSegmentFile(ctx, "loop3", uint64(seq), seg)
	}
	s.Hashes(ctx, "loop3", 0, 1<<20, 64<<10)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`lifeboat_agent_sent_segments_total{disk="loop3"} 2`, // the duplicate is not counted
		`lifeboat_agent_sent_bytes_total{disk="loop3"} 2000`,
		`lifeboat_agent_upload_errors_total{disk="loop3"} 1`,
		`lifeboat_agent_hash_requests_total{disk="loop3"} 1`,
		"# TYPE lifeboat_agent_upload_duration_seconds histogram",
		`lifeboat_agent_upload_duration_seconds_count{disk="loop3"} 3`, // the failed upload is not timed
		"# TYPE lifeboat_agent_sent_bytes_total counter",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestMetricsHistograms: the RPO lag of the acknowledged rounds and the
// freeze of an app point are observed into histograms, which aggregate
// (the quantile gauge stays one release for the dashboards that use it).
func TestMetricsHistograms(t *testing.T) {
	ta := newTestAgent(t, 1)
	m := NewMetrics()
	m.Attach(ta.Agent)
	ta.round(t)
	ta.round(t)
	if _, err := ta.appRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	ta.round(t) // validates the app point
	if ta.lastApp.ID == "" {
		t.Fatalf("no app point (app error %q)", ta.appErr)
	}
	d := ta.disks[0]
	ta.mu.Lock()
	d.lagWait = []lagMark{{seq: 0, oldest: monotonicNow() - int64(3*time.Second)}}
	ta.mu.Unlock()
	if err := d.up.Reset(1); err != nil { // segment 0 acknowledged
		t.Fatal(err)
	}
	ta.measureLag(d)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"# TYPE lifeboat_agent_rpo_lag_observed_seconds histogram",
		`lifeboat_agent_rpo_lag_observed_seconds_bucket{disk="` + d.name + `",le="2"} 0`,
		`lifeboat_agent_rpo_lag_observed_seconds_bucket{disk="` + d.name + `",le="4"} 1`,
		`lifeboat_agent_rpo_lag_observed_seconds_count{disk="` + d.name + `"} 1`,
		"# TYPE lifeboat_agent_freeze_duration_seconds histogram",
		`lifeboat_agent_freeze_duration_seconds_count{kind="app"} 1`,
		`lifeboat_agent_rpo_lag_recent_seconds{disk="` + d.name + `",quantile="1"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
