package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// shortTimeouts makes the bounds short enough for a test.
func shortTimeouts(t *testing.T) {
	d, h, c, s := dialTimeout, handshakeTimeout, callTimeout, stallTimeout
	dialTimeout, handshakeTimeout, callTimeout, stallTimeout = time.Second, time.Second, 2*time.Second, time.Second
	t.Cleanup(func() { dialTimeout, handshakeTimeout, callTimeout, stallTimeout = d, h, c, s })
}

// testProcess returns a process client of addr with a machine certificate
// of a fresh CA, and the CA.
func testProcess(t *testing.T, addr string) (*Process, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueClientKey("web1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcess(addr, cert, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p, ca
}

// within fails the test unless f returns an error within d.
func within(t *testing.T, what string, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("%s: no error from a hung server", what)
		}
		t.Logf("%s: %v after %s", what, err, time.Since(start).Round(time.Millisecond))
		return err
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %s: no response timeout", what, d)
	}
	return nil
}

// TestCallsEndOnStoppedServer: a server whose process is stopped
// (SIGSTOP) still completes TCP connects in the kernel, and never reads
// or answers. Every call must end with an error (issue 18, item 2).
func TestCallsEndOnStoppedServer(t *testing.T) {
	shortTimeouts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, _ := testProcess(t, ln.Addr().String())
	ctx := context.Background()
	within(t, "DiskState", 10*time.Second, func() error { _, err := p.DiskState(ctx, "sda"); return err })
	within(t, "PutSegment", 10*time.Second, func() error {
		_, err := p.PutSegment(ctx, "sda", 0, strings.NewReader("x"), 1)
		return err
	})
	within(t, "Hashes", 10*time.Second, func() error { _, err := p.Hashes(ctx, "sda", 0, 1<<20, 64<<10); return err })
}

// TestPutSegmentStalled: a server that took the request but hangs before
// answering (its disk stuck, its process stopped after accepting) ends
// the upload with ErrStalled.
func TestPutSegmentStalled(t *testing.T) {
	shortTimeouts(t)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			buf := make([]byte, 1<<20)
			r.Body.Read(buf) // take the body, then hang
		}
		<-release
	}))
	ca, err := pki.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, key, err := ca.IssueServer([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	defer close(release)
	mc, err := ca.IssueClientKey("web1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcess(srv.Listener.Addr().String(), mc, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	err = within(t, "PutSegment", 15*time.Second, func() error {
		_, err := p.PutSegment(context.Background(), "sda", 0, strings.NewReader(strings.Repeat("x", 4096)), 4096)
		return err
	})
	if !errors.Is(err, ErrStalled) {
		t.Errorf("err %v, want ErrStalled", err)
	}
	within(t, "Point", 15*time.Second, func() error { _, err := p.Point(context.Background(), "p1"); return err })
}
