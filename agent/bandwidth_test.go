package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// The limit changes at run time through the local API, as agentctl
// bandwidth does it, and a bad request is refused with a hint.
func TestBandwidthLocalAPI(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: Config{Bandwidth: uploader.NewLimiter(8<<20, nil)}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	mux := http.NewServeMux()
	a.handleBandwidth(mux)
	ln, err := net.Listen("unix", filepath.Join(dir, api.AgentSocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	l := client.NewLocal(dir)
	ctx := context.Background()
	b, err := l.Bandwidth(ctx)
	if err != nil || b.Limit != 8<<20 || b.Source != api.BandwidthFromLimit {
		t.Fatalf("Bandwidth = %+v, %v", b, err)
	}
	b, err = l.SetBandwidth(ctx, 2<<20, time.Hour)
	if err != nil || b.Limit != 2<<20 || b.Source != api.BandwidthFromOverride || b.Override == nil || b.Override.Until.IsZero() {
		t.Fatalf("SetBandwidth = %+v, %v", b, err)
	}
	if st := a.bandwidthStatus(); st.Limit != 2<<20 {
		t.Errorf("the agent's status after set: %+v", st)
	}
	if _, err := l.SetBandwidth(ctx, 1000, 0); err == nil || !strings.Contains(api.Hint(err), "at least") {
		t.Errorf("a limit below the minimum: %v (hint %q)", err, api.Hint(err))
	}
	b, err = l.ResetBandwidth(ctx)
	if err != nil || b.Limit != 8<<20 || b.Override != nil {
		t.Fatalf("ResetBandwidth = %+v, %v", b, err)
	}
}

// A disk held up by the limit is not reported as a stalled server, and
// its lag problem names the limit.
func TestLagProblemNamesTheLimit(t *testing.T) {
	now := time.Now()
	ds := DiskStatus{Name: "sdb", Spool: api.SpoolStatus{Queued: 9, BandwidthLimited: true}, Lag: Lag{Current: 1200}}
	bw := api.AgentBandwidth{Limit: 10 << 20, Source: api.BandwidthFromLimit}
	ps := stallProblems(ds, StateProtected, "ps", time.Time{}, now, 2*time.Minute, 15*time.Minute, bw)
	if len(ps) != 1 || ps[0].Code != ProblemLagExceeded || !strings.Contains(ps[0].What, "10MiB/s by the bandwidth limit") || !strings.Contains(ps[0].Remedy, "agentctl bandwidth set") {
		t.Fatalf("problems %+v", ps)
	}
}
