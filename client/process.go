package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// ProcessTLSConfig returns the TLS configuration of a connection to a
// process server: TLS 1.3 only, the machine's certificate, and only the
// Lifeboat CA as root.
func ProcessTLSConfig(cert tls.Certificate, caPEM []byte) (*tls.Config, error) {
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("process tls config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}, nil
}

// Process is a client of the replication endpoints of a process server, as
// one machine (the CommonName of its certificate). Safe for concurrent use.
type Process struct {
	mu   sync.Mutex // guards base (SetAddr)
	base string
	hc   *http.Client
	// cert is the client certificate of new connections (SetCertificate).
	cert atomic.Pointer[tls.Certificate]
}

func (p *Process) url() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base
}

// NewProcess returns a client of the process server at addr ("host:port"
// or an https URL) that authenticates with cert and trusts caPEM.
func NewProcess(addr string, cert tls.Certificate, caPEM []byte) (*Process, error) {
	base, err := baseURL(addr)
	if err != nil {
		return nil, fmt.Errorf("process client: %w", err)
	}
	cfg, err := ProcessTLSConfig(cert, caPEM)
	if err != nil {
		return nil, err
	}
	p := &Process{base: base}
	p.cert.Store(&cert)
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return p.cert.Load(), nil }
	p.hc = newHTTPClient(cfg)
	p.hc.Transport = sessionTransport{RoundTripper: p.hc.Transport, id: rand.Text()}
	return p, nil
}

// sessionTransport marks every request with the client's agent session
// (api.HeaderAgentSession): one per Process, hence one per agent process.
type sessionTransport struct {
	http.RoundTripper
	id string
}

func (t sessionTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the request
	r.Header.Set(api.HeaderAgentSession, t.id)
	return t.RoundTripper.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the transport
// (http.Client.CloseIdleConnections calls it).
func (t sessionTransport) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// SetCertificate makes new connections use cert (a renewed certificate)
// and closes the idle ones.
func (p *Process) SetCertificate(cert tls.Certificate) {
	p.cert.Store(&cert)
	p.hc.CloseIdleConnections()
}

// CloseIdleConnections closes the client's idle connections.
func (p *Process) CloseIdleConnections() { p.hc.CloseIdleConnections() }

func diskPath(disk, rest string) string {
	return "/v1/disks/" + url.PathEscape(disk) + rest
}

// SetMachine declares the disks the machine protects.
func (p *Process) SetMachine(ctx context.Context, disks []api.DiskSpec) (api.Machine, error) {
	var m api.Machine
	err := doJSON(ctx, p.hc, http.MethodPut, p.url()+api.PathMachine, api.MachineRequest{Disks: disks}, &m)
	return m, err
}

// DiskState returns the replication state of a disk: where to resume. It
// fences the disk: an upload of another Process (a previous agent
// process) not durable yet is refused from then on (api.ErrSuperseded).
func (p *Process) DiskState(ctx context.Context, disk string) (api.DiskState, error) {
	var st api.DiskState
	err := doJSON(ctx, p.hc, http.MethodGet, p.url()+diskPath(disk, "/state"), nil, &st)
	return st, err
}

// PutSegment sends segment seq of disk, size bytes read from body. It asks
// for "100-continue", so a duplicate or out-of-order segment is answered
// before its body is sent. A 409 answer is an *APIError whose Expected is
// the sequence number to send next.
func (p *Process) PutSegment(ctx context.Context, disk string, seq uint64, body io.Reader, size int64) (api.SegmentAck, error) {
	var ack api.SegmentAck
	u := p.url() + diskPath(disk, "/segments/"+strconv.FormatUint(seq, 10))
	// A hung server (stopped, or its disk stuck) must end the call: the
	// body must make progress and the answer come within StallTimeout of
	// the last byte sent (the connect and handshake have their own
	// bounds, the wait for "100 Continue" is ExpectContinueTimeout).
	wd := newWatchdog(ctx, dialTimeout+handshakeTimeout+stallTimeout, stallTimeout)
	defer wd.stop()
	ctx = wd.ctx
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, io.NopCloser(wd.reader(body)))
	if err != nil {
		return ack, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	if base, ok := api.SegmentBase(ctx); ok {
		req.Header.Set(api.HeaderSegmentBase, strconv.FormatUint(base, 10))
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return ack, wd.err(err)
	}
	defer resp.Body.Close()
	err = decode(resp, &ack)
	return ack, wd.err(err)
}

// PutSegmentFile sends the segment file path as segment seq of disk.
func (p *Process) PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.SegmentAck{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return api.SegmentAck{}, err
	}
	return p.PutSegment(ctx, disk, seq, f, fi.Size())
}

// Hashes returns the SHA-256 of each block of block bytes of the disk's
// replica in [off, off+n), once every segment acknowledged so far is
// applied.
func (p *Process) Hashes(ctx context.Context, disk string, off, n, block int64) ([][32]byte, error) {
	ctx, cancel := bound(ctx, HashesTimeout)
	defer cancel()
	q := url.Values{}
	q.Set("offset", strconv.FormatInt(off, 10))
	q.Set("length", strconv.FormatInt(n, 10))
	q.Set("block", strconv.FormatInt(block, 10))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+diskPath(disk, "/hashes")+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, timeoutError(ctx, err, HashesTimeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxHashesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read hashes: %w", err)
	}
	if len(b)%32 != 0 || len(b) > api.MaxHashesBytes {
		return nil, fmt.Errorf("read hashes: answer of %d bytes is not a whole number of hashes", len(b))
	}
	hs := make([][32]byte, len(b)/32)
	for i := range hs {
		copy(hs[i][:], b[32*i:])
	}
	return hs, nil
}

// Point tells whether the recovery point id is durable and listed.
func (p *Process) Point(ctx context.Context, id string) (api.PointStatus, error) {
	var st api.PointStatus
	err := doJSON(ctx, p.hc, http.MethodGet, p.url()+"/v1/points/"+url.PathEscape(id), nil, &st)
	return st, err
}

// escape escapes a machine name for a path.
func escape(s string) string { return url.PathEscape(strings.TrimSpace(s)) }

// Probe sends n bytes that the process server reads and discards, and
// returns what it read and the time the whole exchange took here: the
// throughput of the link and the server's TLS for this machine.
func (p *Process) Probe(ctx context.Context, n int64) (api.ProbeResult, time.Duration, error) {
	var res api.ProbeResult
	wd := newWatchdog(ctx, dialTimeout+handshakeTimeout+stallTimeout, stallTimeout)
	defer wd.stop()
	ctx = wd.ctx
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url()+api.PathProbe, wd.reader(io.LimitReader(zeroReader{}, n)))
	if err != nil {
		return res, 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := p.hc.Do(req)
	if err != nil {
		return res, 0, wd.err(err)
	}
	defer resp.Body.Close()
	err = decode(resp, &res)
	return res, time.Since(start), wd.err(err)
}

// zeroReader reads zeros (TLS encrypts them, so they cost what data does).
type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
