package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// baseURL turns "host:port" or an https URL into an https base URL without
// a trailing slash.
func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("no server address")
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("server address %q: %w", addr, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("server address %q: scheme must be https", addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("server address %q: no host", addr)
	}
	return "https://" + u.Host + strings.TrimSuffix(u.Path, "/"), nil
}

// Timeouts of every call (issue 18: a hung server must show as an error,
// never as a call that waits for ever). A context with an earlier deadline
// wins.
const (
	// DialTimeout bounds a TCP connect, TLSHandshakeTimeout the TLS
	// handshake after it.
	DialTimeout         = 15 * time.Second
	TLSHandshakeTimeout = 15 * time.Second
	// CallTimeout bounds a call that carries a small JSON body each way.
	CallTimeout = time.Minute
	// LongCallTimeout bounds an admin call that does long work before it
	// answers (failover, plans, a move's drain, failback).
	LongCallTimeout = 6 * time.Hour
	// HashesTimeout bounds GET hashes, which the server answers once
	// every acknowledged segment is applied.
	HashesTimeout = 10 * time.Minute
	// StallTimeout: a segment upload whose body makes no progress this
	// long, or whose answer does not come this long after its body was
	// sent, is abandoned.
	StallTimeout = 30 * time.Second
)

// The bounds in effect (tests shorten them).
var (
	dialTimeout, handshakeTimeout = DialTimeout, TLSHandshakeTimeout
	callTimeout, stallTimeout     = CallTimeout, StallTimeout
)

// bound returns ctx with a deadline d from now unless it has an earlier
// one.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// long marks a call that may take LongCallTimeout.
type longKey struct{}

func long(ctx context.Context) context.Context { return context.WithValue(ctx, longKey{}, true) }

func newHTTPClient(cfg *tls.Config) *http.Client {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           d.DialContext,
			TLSClientConfig:       cfg,
			TLSHandshakeTimeout:   handshakeTimeout,
			ExpectContinueTimeout: 5 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		},
		// Answers are never redirects; following one could leak a
		// request body elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func caPool(caPEM []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in the CA PEM")
	}
	return p, nil
}

// doJSON sends a request with an optional JSON body and decodes a 2xx JSON
// answer into out (unless nil). Other answers are *APIError.
func doJSON(ctx context.Context, hc *http.Client, method, u string, in, out any) error {
	to := callTimeout
	if ctx.Value(longKey{}) != nil {
		to = LongCallTimeout
	}
	ctx, cancel := bound(ctx, to)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return timeoutError(ctx, err, to)
	}
	defer resp.Body.Close()
	return timeoutError(ctx, decode(resp, out), to)
}

func decode(resp *http.Response, out any) error {
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return bytes.NewReader(b), nil
}

// timeoutError says which bound a call hit, if it hit one.
func timeoutError(ctx context.Context, err error, d time.Duration) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.DeadlineExceeded) {
		return c
	}
	return fmt.Errorf("no answer within %s: %w", d, err)
}
