package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
)

func TestInitRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	if err := m.Run(context.Background(), []string{"init", "--data", dir, "--san", "backup.example"}); err != nil {
		t.Fatalf("init: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "passphrase")) {
		t.Errorf("init output: %s", out.String())
	}
	for _, f := range []string{"ca.crt", "ca.key", "server.crt", "server.key", "admin.crt", "admin.key", "passphrase"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// A second init refuses, with the message of the contract.
	err := m.Run(context.Background(), []string{"init", "--data", dir})
	if !errors.Is(err, pki.ErrInitialized) || !strings.Contains(err.Error(), dir+" already initialized; use another --data or remove it") {
		t.Errorf("second init: %v", err)
	}
	var msg bytes.Buffer
	printError(&msg, err)
	if !strings.Contains(msg.String(), "hint:") {
		t.Errorf("no hint printed: %s", msg.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *server.Server, 1)
	m = &Main{Stdout: &out, Stderr: &cmdlinetest.Buffer{}, Ready: func(s *server.Server) { ready <- s }}
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0"})
	}()
	var srv *server.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not start")
	}
	st, err := statefile.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.API != srv.APIAddr() || st.Process != srv.ProcessAddr() || st.APIURL != "https://"+srv.APIAddr() || st.PID != os.Getpid() {
		t.Errorf("server.json %+v", st)
	}
	if strings.Join(st.Roles, ",") != "config,process,mastertarget" {
		t.Errorf("roles %v", st.Roles)
	}
	a := servertest.Register(t, srv, dir, "web1")
	if _, err := a.Process.DiskState(ctx, "sda"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, statefile.File)); !os.IsNotExist(err) {
		t.Errorf("server.json left after shutdown: %v", err)
	}
}

func TestRunErrors(t *testing.T) {
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	dir := t.TempDir()
	err := m.Run(context.Background(), []string{"run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0"})
	var msg bytes.Buffer
	printError(&msg, err)
	if err == nil || !strings.Contains(msg.String(), "lifeboat-server init") {
		t.Errorf("run on an empty directory: %s", msg.String())
	}
	if err := m.Run(context.Background(), []string{"run", "--data", dir, "--roles", "config,bogus"}); err == nil {
		t.Error("bogus role accepted")
	}
	if err := m.Run(context.Background(), []string{"run", "--data", dir, "--prune-interval", "-1s"}); err == nil || !strings.Contains(err.Error(), "--prune-interval") {
		t.Errorf("negative --prune-interval: %v", err)
	}
	// A port in use: a clear error, and nothing left running.
	busy := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, busy))
	other := servertest.Init(t)
	err = m.Run(context.Background(), []string{"run", "--data", other, "--api", "127.0.0.1:0", "--listen", s.ProcessAddr()})
	msg.Reset()
	printError(&msg, err)
	if err == nil || !strings.Contains(msg.String(), "process role: listen on") || !strings.Contains(msg.String(), "hint: the port is in use") {
		t.Errorf("port in use: %s", msg.String())
	}
	err = m.Run(context.Background(), []string{"run", "--data", other, "--api", s.APIAddr(), "--listen", "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "config role: listen on") {
		t.Errorf("api port in use: %v", err)
	}
	// The data directory is free again: the failed runs released it.
	servertest.Start(t, servertest.Config(t, other))
}

// startProcess runs lifeboat-server run on dir as a child process and
// waits for its server.json.
func startProcess(t *testing.T, dir string) (*exec.Cmd, statefile.State) {
	t.Helper()
	cmd := cmdlinetest.Command("run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0")
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), "server.log"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var st statefile.State
	servertest.WaitFor(t, "server.json of the new process", func() bool {
		st, err = statefile.Read(dir)
		return err == nil && st.PID == cmd.Process.Pid
	})
	return cmd, st
}

// killSegment is segment seq of the kill test: one block of 4 KiB at
// block seq%64, filled with a byte of seq, and a cut every 5 segments.
func killSegment(t *testing.T, dir string, seq uint64) string {
	sg := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: 64 * 4096, Seq: seq, Gen: seq + 1,
		Writes: []servertest.Write{{Off: int64(seq%64) * 4096, Data: bytes.Repeat([]byte{byte(seq*7 + 1)}, 4096)}}}
	if seq%5 == 4 {
		sg.Cuts = append(sg.Cuts, servertest.Cut(fmt.Sprintf("p%d", seq)))
	}
	return sg.Build(t, dir)
}

// TestKill9 kills the server process with SIGKILL at random moments while
// an agent uploads, restarts it, and checks that every acknowledged
// segment survived and the replica is exactly what the segments make.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := servertest.Init(t)
	segDir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var agent *servertest.Agent
	var maxAcked int64 = -1
	for round := range 6 {
		cmd, st := startProcess(t, dir)
		if agent == nil {
			agent = registerWith(t, st, dir)
		}
		p, err := client.NewProcess(st.Process, agent.Cert, agent.CAPEM)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ds, err := p.DiskState(ctx, "sda")
		if err != nil {
			t.Fatalf("round %d: state: %v", round, err)
		}
		if int64(ds.NextSeq) <= maxAcked {
			t.Fatalf("round %d: next_seq %d after segment %d was acknowledged", round, ds.NextSeq, maxAcked)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := ds.NextSeq; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				path := filepath.Join(segDir, fmt.Sprintf("%d.hrl", seq))
				if _, err := os.Stat(path); err != nil {
					os.Rename(killSegment(t, t.TempDir(), seq), path)
				}
				ack, err := p.PutSegmentFile(ctx, "sda", seq, path)
				if err != nil {
					return // the server died
				}
				if ack.Acked != seq {
					t.Errorf("ack %+v for %d", ack, seq)
					return
				}
				if int64(seq) > maxAcked {
					maxAcked = int64(seq)
				}
			}
		}()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
		cancel()
		p.CloseIdleConnections()
		t.Logf("round %d: resumed at %d, last acknowledged %d", round, ds.NextSeq, maxAcked)
	}
	if maxAcked < 10 {
		t.Fatalf("only %d segments acknowledged: the test did not exercise much", maxAcked+1)
	}
	cmd, st := startProcess(t, dir)
	p, err := client.NewProcess(st.Process, agent.Cert, agent.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ds api.DiskState
	servertest.WaitFor(t, "every durable segment applied", func() bool {
		ds, err = p.DiskState(ctx, "sda")
		return err == nil && ds.Applied && ds.AppliedSeq+1 == ds.NextSeq
	})
	if int64(ds.NextSeq) <= maxAcked {
		t.Fatalf("next_seq %d, but %d was acknowledged", ds.NextSeq, maxAcked)
	}
	// The replica is what segments 0 to next_seq-1 make, in order.
	var img [64][]byte
	for seq := range ds.NextSeq {
		img[seq%64] = bytes.Repeat([]byte{byte(seq*7 + 1)}, 4096)
	}
	hs, err := p.Hashes(ctx, "sda", 0, 64*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		want := sha256.Sum256(make([]byte, 4096))
		if img[i] != nil {
			want = sha256.Sum256(img[i])
		}
		if h != want {
			t.Errorf("block %d of the replica differs", i)
		}
	}
	// Every cut of an applied segment is listed.
	for seq := uint64(4); seq < ds.NextSeq; seq += 5 {
		ps, err := p.Point(ctx, fmt.Sprintf("p%d", seq))
		if err != nil || !ps.Durable || !ps.Listed {
			t.Errorf("point p%d: %+v, %v", seq, ps, err)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("server after SIGTERM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, statefile.File)); !os.IsNotExist(err) {
		t.Errorf("server.json left after SIGTERM: %v", err)
	}
}

// registerWith registers web1 with the server process of st.
func registerWith(t *testing.T, st statefile.State, dir string) *servertest.Agent {
	t.Helper()
	pass, err := pki.ReadPassphrase(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certPEM, caPEM, addr, err := client.Register(ctx, st.API, "web1", pass, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.KeyPEM(key)
	cert, err := tlsPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &servertest.Agent{Name: "web1", Cert: cert, CAPEM: caPEM, Addr: addr}
}

func tlsPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	return tls.X509KeyPair(certPEM, keyPEM)
}
