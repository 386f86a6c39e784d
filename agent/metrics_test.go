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
		"# TYPE lifeboat_agent_sent_bytes_total counter",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
