package server_test

import (
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/metricsweb/metricswebtest"
	"github.com/lifeboat-dr/lifeboat/server"
)

// The server's /metrics with a web configuration file: TLS, and basic
// authentication refused without the configured user.
func TestMetricsWebConfig(t *testing.T) {
	c := metricswebtest.Write(t)
	e := newEnv(t, func(cfg *server.Config) { cfg.MetricsAddr, cfg.MetricsWebConfig = "127.0.0.1:0", c.Path })
	c.Check(t, e.srv.MetricsAddr(), "lifeboat_build_info")
}
