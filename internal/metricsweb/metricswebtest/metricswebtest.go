// Package metricswebtest writes a web configuration file for the tests of
// a /metrics endpoint served through internal/metricsweb: TLS with a
// certificate for 127.0.0.1 from a fresh CA, and one basic-auth user.
package metricswebtest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// User and Password are the basic-auth credentials the file accepts.
const (
	User     = "prometheus"
	Password = "scrape-secret"
)

// Config is a written web configuration file.
type Config struct {
	Path string
	// Pool trusts the endpoint's certificate.
	Pool *x509.CertPool
}

// Write writes the file (and its certificate and key) into a temporary
// directory of t.
func Write(t testing.TB) Config {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"metrics.crt": certPEM,
		"metrics.key": keyPEM,
		// Relative paths are read from the file's directory.
		"web.yml": []byte("tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\nbasic_auth_users:\n  " + User + ": " + string(hash) + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Config{Path: filepath.Join(dir, "web.yml"), Pool: ca.Pool()}
}

// Get scrapes url over TLS trusting c's certificate, with the user and
// password given (none when user is ""), and returns the status and body.
func (c Config) Get(t testing.TB, url, user, password string) (int, string, error) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Check asserts what a /metrics endpoint at addr configured by c does:
// refuses plain HTTP and a request without (or with wrong) credentials,
// serves the metrics, containing want, over TLS to the right ones.
func (c Config) Check(t testing.TB, addr, want string) {
	t.Helper()
	url := "https://" + addr + "/metrics"
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP served the metrics")
		}
	}
	if code, _, err := c.Get(t, url, "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no credentials: status %d, %v; want 401", code, err)
	}
	if code, _, err := c.Get(t, url, User, "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, %v; want 401", code, err)
	}
	code, body, err := c.Get(t, url, User, Password)
	if err != nil || code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("with credentials over TLS: status %d, %v; want 200 with %q:\n%.2000s", code, err, want, body)
	}
}
