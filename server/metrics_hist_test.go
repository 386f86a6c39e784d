package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestMetricsHistograms: every segment applied and every materialization
// (here a test failover) is timed into a histogram of the server's
// namespace.
func TestMetricsHistograms(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MetricsAddr = "127.0.0.1:0" })
	a := e.agent("web1")
	putSeg(t, a, 0, 'a', nil, servertest.Cut("p0"))
	putSeg(t, a, 1, 'b', nil, servertest.Cut("p1"))
	e.waitApplied(a, "sda", 2)
	adm := servertest.Admin(t, e.srv, e.dir)
	if _, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Test: true, Out: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + e.srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"# TYPE lifeboat_server_apply_duration_seconds histogram",
		`lifeboat_server_apply_duration_seconds_count{disk="sda",machine="web1"} 2`,
		"# TYPE lifeboat_server_materialize_duration_seconds histogram",
		`lifeboat_server_materialize_duration_seconds_count{machine="web1"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, _, _ := strings.Cut(line, "{"); strings.HasPrefix(line, "lifeboat_") && !strings.HasPrefix(name, "lifeboat_server_") &&
			!strings.HasPrefix(name, "lifeboat_build_info") && !strings.HasPrefix(name, "lifeboat_alert_active") && !strings.HasPrefix(name, "lifeboat_drill") {
			t.Errorf("metric outside the server's namespace (other than the deprecated names and build info): %s", line)
		}
	}
}
