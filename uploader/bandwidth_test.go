package uploader_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// meter is a process server's segment endpoint over mutual TLS 1.3 that
// reads every body and notes when its bytes arrived.
type meter struct {
	mu           sync.Mutex
	bytes        int64
	first, last  time.Time
	perDisk      map[string]int64
	segmentsSeen int
}

func (m *meter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bytes, m.first, m.last, m.perDisk = 0, time.Time{}, time.Time{}, map[string]int64{}
}

// rate returns the bytes received and their rate from the first byte to
// the last.
func (m *meter) rate() (int64, float64, time.Duration, map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	span := m.last.Sub(m.first)
	per := map[string]int64{}
	for k, v := range m.perDisk {
		per[k] = v
	}
	return m.bytes, float64(m.bytes) / span.Seconds(), span, per
}

func (m *meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 64<<10)
	disk := r.PathValue("disk")
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			now := time.Now()
			m.mu.Lock()
			if m.first.IsZero() {
				m.first = now
			}
			m.last = now
			m.bytes += int64(n)
			m.perDisk[disk] += int64(n)
			m.mu.Unlock()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	m.mu.Lock()
	m.segmentsSeen++
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.SegmentAck{})
}

// startTLS serves m on loopback with the process server's TLS set-up:
// TLS 1.3, a client certificate from the CA required.
func startTLS(t *testing.T, m *meter) (*client.Process, func()) {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	srvPEM, srvKey, err := ca.IssueServer([]string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.KeyPEM(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := tls.X509KeyPair(srvPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := ca.IssueClientKey("bandwidth-test", now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("PUT /v1/disks/{disk}/segments/{seq}", m)
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}}
	go srv.ServeTLS(ln, "", "")
	p, err := client.NewProcess(ln.Addr().String(), cliCert, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p, func() { srv.Close() }
}

// TestBandwidthLimitOverTLS sends segments of two disks, one from memory
// and one from spool files, through one limit to a real TLS listener and
// checks the rate the server measured over several seconds, then again
// after a change at run time.
func TestBandwidthLimitOverTLS(t *testing.T) {
	m := &meter{}
	m.reset()
	proc, stop := startTLS(t, m)
	defer stop()
	const limit = 4 << 20
	lim := uploader.NewLimiter(limit, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mem, err := uploader.New(proc, "mem", "", log)
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	file, err := uploader.New(proc, "file", spool, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, u := range []*uploader.Uploader{mem, file} {
		u.SetLimiter(lim)
		wg.Add(1)
		go func() { defer wg.Done(); u.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	seg := make([]byte, 1<<20)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	next := uint64(0)
	queue := func(n int) {
		for range n {
			mem.SealedMemory(next, append([]byte(nil), seg...))
			path := filepath.Join(spool, hrlfmt.SegmentName(next))
			if err := os.WriteFile(path, seg, 0o600); err != nil {
				t.Fatal(err)
			}
			file.Sealed(next, path)
			next++
		}
	}
	measure := func(want float64, n int) {
		t.Helper()
		m.reset()
		queue(n)
		sawLimited := false
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		done := make(chan struct{})
		go func() {
			mem.WaitIdle(wctx)
			file.WaitIdle(wctx)
			close(done)
		}()
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-time.After(200 * time.Millisecond):
				sawLimited = sawLimited || mem.Status().BandwidthLimited || file.Status().BandwidthLimited
			}
		}
		if wctx.Err() != nil {
			t.Fatalf("uploads did not finish: %v", wctx.Err())
		}
		got, r, span, per := m.rate()
		if got != int64(2*n*len(seg)) {
			t.Fatalf("server received %d bytes, want %d", got, 2*n*len(seg))
		}
		t.Logf("limit %.0f B/s: %d bytes in %s = %.0f B/s (%.1f%% of the limit); per disk %v", want, got, span.Round(time.Millisecond), r, 100*r/want, per)
		if r < 0.9*want || r > 1.1*want {
			t.Errorf("measured %.0f B/s, want within 10%% of %.0f B/s", r, want)
		}
		if span < 2500*time.Millisecond {
			t.Errorf("measured over %s only; the test needs several seconds", span)
		}
		if !sawLimited {
			t.Errorf("no disk showed bandwidth_limited while segments queued behind the limit")
		}
	}
	// 20 MiB at 4 MiB/s: about 5 s.
	measure(limit, 10)
	if st := lim.Status(); st.Limit != limit || st.Source != api.BandwidthFromLimit {
		t.Errorf("status %+v, want the configured limit in force", st)
	}
	// Changed at run time (agentctl bandwidth set): 24 MiB at 8 MiB/s.
	lim.SetOverride(8<<20, time.Time{})
	if st := lim.Status(); st.Limit != 8<<20 || st.Source != api.BandwidthFromOverride {
		t.Errorf("status %+v, want the override in force", st)
	}
	measure(8<<20, 12)
}
