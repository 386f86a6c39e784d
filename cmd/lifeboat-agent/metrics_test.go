package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb/metricswebtest"
)

// The agent's /metrics with --web-config-file: TLS, and basic
// authentication refused without the configured user.
func TestMetricsWebConfig(t *testing.T) {
	c := metricswebtest.Write(t)
	// The server's goroutine logs too (the toolkit's "Listening on"):
	// the buffer is read under the lock the handler writes it with.
	logs := &cmdlinetest.Buffer{}
	stop, err := serveMetrics("127.0.0.1:0", c.Path, true, agent.NewMetrics(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var addr string
	for _, line := range bytes.Split([]byte(logs.String()), []byte("\n")) {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "metrics listening" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no listening address logged:\n%s", logs.String())
	}
	c.Check(t, addr, "lifeboat_build_info")
}
