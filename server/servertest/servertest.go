package servertest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// Init makes an initialized data directory in a temporary directory.
func Init(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := pki.Init(dir, pki.Options{}); err != nil {
		t.Fatalf("init: %v", err)
	}
	return dir
}

// Logger returns a logger that writes to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Config returns the configuration of a server on dir with every role on
// 127.0.0.1:0.
func Config(t testing.TB, dir string) server.Config {
	return server.Config{
		DataDir:    dir,
		APIAddr:    "127.0.0.1:0",
		ListenAddr: "127.0.0.1:0",
		Logger:     Logger(t),
		RetryMax:   200 * time.Millisecond,
	}
}

// Start opens a server with cfg and closes it when the test ends.
func Start(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	s, err := server.Open(cfg)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Agent is a registered machine.
type Agent struct {
	Name    string
	Cert    tls.Certificate
	CAPEM   []byte
	Process *client.Process
	Addr    string // process server, as registration gave it
}

// Register registers machine name with the server of data directory dir
// and returns a process client with its new certificate.
func Register(t testing.TB, s *server.Server, dir, name string) *Agent {
	t.Helper()
	pass, err := pki.ReadPassphrase(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certPEM, caPEM, addr, err := client.Register(ctx, s.APIAddr(), name, pass, key)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProcess(addr, cert, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return &Agent{Name: name, Cert: cert, CAPEM: caPEM, Process: p, Addr: addr}
}

// Admin returns an admin client of the server, with the admin certificate
// of dir.
func Admin(t testing.TB, s *server.Server, dir string) *client.Admin {
	t.Helper()
	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, err := client.NewAdmin(s.APIAddr(), read(pki.CACertFile), read(pki.AdminCertFile), read(pki.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.CloseIdleConnections)
	return a
}

// Write is one extent of a segment: data at Off (zeros if Zero is set
// instead, for Zero bytes).
type Write struct {
	Off  int64
	Data []byte
	Zero int64
}

// Segment describes a segment to build.
type Segment struct {
	Machine, Disk string
	DiskSize      int64
	Seq           uint64
	Gen           uint64
	Writes        []Write
	// Notes are written after the writes, before the cuts.
	Notes []hrlfmt.Note
	// Cuts are written after the writes, in order.
	Cuts []hrlfmt.Cut
}

// Build writes the segment into a new file in dir and returns its path.
func (sg Segment) Build(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, sg.Machine+"-"+sg.Disk+"-"+hrlfmt.SegmentName(sg.Seq))
	os.Remove(path)
	w, err := hrlfmt.CreateSegment(path, hrlfmt.Header{
		Machine: sg.Machine, Disk: sg.Disk, DiskSize: sg.DiskSize, Seq: sg.Seq,
		Created: time.Now(), FirstGen: sg.Gen,
	})
	if err != nil {
		t.Fatalf("create segment: %v", err)
	}
	for _, wr := range sg.Writes {
		if wr.Zero > 0 {
			err = w.WriteZero(wr.Off, wr.Zero, sg.Gen, hrlfmt.ZeroZeroed)
		} else {
			err = w.WriteData(wr.Off, sg.Gen, wr.Data)
		}
		if err != nil {
			t.Fatalf("write segment: %v", err)
		}
	}
	for _, n := range sg.Notes {
		if err := w.WriteNote(n); err != nil {
			t.Fatalf("write note: %v", err)
		}
	}
	for _, c := range sg.Cuts {
		if c.Gen == 0 {
			c.Gen = sg.Gen
		}
		if c.Time.IsZero() {
			c.Time = time.Now()
		}
		if c.Kind == 0 {
			c.Kind = hrlfmt.CutCrash
		}
		if err := w.WriteCut(c); err != nil {
			t.Fatalf("write cut: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close segment: %v", err)
	}
	return path
}

// Cut returns a crash-consistent cut named id.
func Cut(id string) hrlfmt.Cut {
	return hrlfmt.Cut{Kind: hrlfmt.CutCrash, PointID: id, Time: time.Now()}
}

// WaitFor polls cond until it holds or 20 seconds pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reconnect returns the machine a with a process client of s, keeping its
// certificate: after a restart of the server on the same data directory,
// whose listeners have new addresses. (Registering the name again would
// need the operator's approval.)
func Reconnect(t testing.TB, s *server.Server, a *Agent) *Agent {
	t.Helper()
	p, err := client.NewProcess(s.ProcessAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	b := *a
	b.Process, b.Addr = p, s.ProcessAddr()
	return &b
}
