package metricsweb

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Check reads the web configuration file at path and its certificates,
// with what to do when it is wrong. An empty path is no file: fine.
func Check(path string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return api.WithHint(fmt.Errorf("--web-config-file: %w", err), "give the path of an existing web configuration file (docs/metrics.md), or none for plain HTTP")
	}
	if err := web.Validate(path); err != nil {
		return api.WithHint(fmt.Errorf("--web-config-file %s: %w", path, err),
			"the file is the Prometheus exporters' web configuration (YAML): tls_server_config (cert_file, key_file, client_ca_file…), basic_auth_users (name: bcrypt hash); see docs/metrics.md")
	}
	return nil
}

// Serve serves h at GET /metrics on ln, with the web configuration file
// at path ("" for plain HTTP), until the returned server is closed.
// Serving errors other than the close go to errc (may be nil: then they
// are logged).
func Serve(ln net.Listener, h http.Handler, path string, log *slog.Logger, errc chan<- error) (*http.Server, error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	p := path
	flags := &web.FlagConfig{WebConfigFile: &p}
	go func() {
		err := web.Serve(ln, srv, flags, log)
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			return
		}
		if errc != nil {
			errc <- fmt.Errorf("metrics: %w", err)
			return
		}
		log.Error("metrics endpoint stopped", "err", err)
	}()
	return srv, nil
}
