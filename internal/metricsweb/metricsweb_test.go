package metricsweb_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb/metricswebtest"
)

func serve(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "test_metric 1\n") })
	srv, err := metricsweb.Serve(ln, h, path, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// With a web configuration file /metrics is served over TLS to the
// configured user only.
func TestServeWithWebConfig(t *testing.T) {
	c := metricswebtest.Write(t)
	c.Check(t, serve(t, c.Path), "test_metric 1")
}

// Without one it is plain HTTP, as before.
func TestServePlain(t *testing.T) {
	resp, err := http.Get("http://" + serve(t, "") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "test_metric 1\n" {
		t.Errorf("plain: %d %q", resp.StatusCode, b)
	}
}

// A bad file is refused before anything is served, with what to do.
func TestCheckRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n"), 0o600)
	unknown := filepath.Join(dir, "typo.yml")
	os.WriteFile(unknown, []byte("basic_auth_user:\n  a: b\n"), 0o600)
	for _, p := range []string{filepath.Join(dir, "nope.yml"), bad, unknown} {
		err := metricsweb.Check(p)
		if err == nil || !strings.Contains(err.Error(), "--web-config-file") || api.Hint(err) == "" {
			t.Errorf("Check(%s) = %v (hint %q), want an error with a hint", filepath.Base(p), err, api.Hint(err))
		}
	}
}
