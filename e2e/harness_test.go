//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lifeboat-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/lifeboat-server", "../cmd/lifeboat-agent", "../cmd/agentctl", "../cmd/lifeboat")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// proc is a process of the test, with its output kept in a file.
type proc struct {
	t    *testing.T
	name string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); f.Close(); close(p.done) }()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill9 kills the process at once, as a crash would.
func (p *proc) kill9() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stop asks the process to stop and waits.
func (p *proc) stop() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop within 30 s of SIGTERM; killing it", p.name)
		p.kill9()
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func newProc(t *testing.T, name string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.kill9()
		if t.Failed() {
			t.Logf("--- %s log (tail):\n%s", name, p.tail())
		}
		p.logLostCompletions()
	})
	return p
}

// logLostCompletions puts into the test's output, pass or fail, the lines
// where the agent reaped writes whose completion the tracker missed: a
// tracker bug that otherwise leaves no trace once the log is removed with
// the test's temporary directory.
func (p *proc) logLostCompletions() {
	b, _ := os.ReadFile(p.log)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "missed the completion") {
			p.t.Logf("%s: LOST COMPLETION: %s", p.name, l)
		}
	}
}

// server is a lifeboat-server with all roles; agents reach its process
// role through a proxy the test can cut.
type server struct {
	t     *testing.T
	data  string
	p     *proc
	proxy *proxy
	api   string
	// metrics is the /metrics address, when started with --metrics.
	metrics string
}

func startServer(t *testing.T) *server {
	t.Helper()
	return startServerIn(t, t.TempDir())
}

// startServerIn is startServer with the data directory data.
func startServerIn(t *testing.T, data string) *server {
	t.Helper()
	if out, err := exec.Command(bin("lifeboat-server"), "init", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("lifeboat-server init: %v\n%s", err, out)
	}
	px := newProxy(t)
	s := &server{t: t, data: data, proxy: px}
	s.p = newProc(t, "server", bin("lifeboat-server"), "run", "--data", data,
		"--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--advertise", px.addr())
	s.start()
	return s
}

func (s *server) start() {
	s.t.Helper()
	os.Remove(filepath.Join(s.data, "server.json"))
	s.p.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(s.data, "server.json"))
		var st struct{ API, Process string }
		if err == nil && json.Unmarshal(b, &st) == nil && st.Process != "" {
			s.api = st.API
			s.proxy.setTarget(st.Process)
			return
		}
		if !s.p.running() || time.Now().After(deadline) {
			s.t.Fatalf("server did not start:\n%s", s.p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) restart() { s.p.kill9(); s.start() }

// lifeboat runs the admin CLI on the server's data directory.
func (s *server) lifeboat(args ...string) (string, error) {
	cmd := exec.Command(bin("lifeboat"), append([]string{"--data", s.data}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("lifeboat %v: %v: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

type point struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"`
	Disks []string  `json:"disks"`
	Note  string    `json:"note"`
}

func (s *server) points(machine string) []point {
	s.t.Helper()
	out, err := s.lifeboat("points", machine, "--json")
	if err != nil {
		s.t.Fatal(err)
	}
	var ps []point
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		s.t.Fatalf("points --json: %v: %q", err, out)
	}
	return ps
}

// failover materializes a point and returns the path of the disk's image.
func (s *server) failover(machine, pointID, disk string) string {
	s.t.Helper()
	out := s.t.TempDir()
	if _, err := s.lifeboat("failover", machine, "--point", pointID, "--test", "--out", out); err != nil {
		s.t.Fatal(err)
	}
	img := filepath.Join(out, disk+".img")
	if _, err := os.Stat(img); err != nil {
		s.t.Fatalf("failover wrote no %s: %v", img, err)
	}
	return img
}

// agent is a lifeboat-agent process.
type agent struct {
	t     *testing.T
	name  string
	state string
	p     *proc
}

func startAgent(t *testing.T, s *server, name string, disks []string, extra ...string) *agent {
	t.Helper()
	a := &agent{t: t, name: name, state: t.TempDir()}
	pins := testenv.BPFFSDir(t)
	args := []string{bin("lifeboat-agent"), "run", "--server", s.api, "--passphrase-file", filepath.Join(s.data, "passphrase"),
		"--state", a.state, "--name", name, "--pin-dir", pins}
	for _, d := range disks {
		args = append(args, "--disk", d)
	}
	a.p = newProc(t, "agent-"+name, append(args, extra...)...)
	a.p.start()
	a.waitAPI()
	return a
}

func (a *agent) waitAPI() {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(a.state, "agent.sock")); err == nil {
			if _, err := a.ctl("status", "--json"); err == nil || strings.Contains(err.Error(), "exit status 1") {
				return
			}
		}
		if !a.p.running() || time.Now().After(deadline) {
			a.t.Fatalf("agent did not start:\n%s", a.p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *agent) restart() {
	a.p.kill9()
	os.Remove(filepath.Join(a.state, "agent.sock"))
	a.p.start()
	a.waitAPI()
}

func (a *agent) ctl(args ...string) (string, error) {
	cmd := exec.Command(bin("agentctl"), append([]string{args[0], "--state", a.state}, args[1:]...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("agentctl %v: %v: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

// bookmark cuts a point and waits until the server lists it.
func (a *agent) bookmark() string {
	a.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := a.ctl("bookmark", "--wait")
		if err == nil {
			return strings.TrimSpace(out)
		}
		// Not yet synchronised, or the point did not converge: try again.
		if time.Now().After(deadline) {
			st, _ := a.ctl("status")
			a.t.Fatalf("bookmark: %v\nstatus:\n%s", err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// proxy forwards TCP to the process server; cut() drops every connection
// and refuses new ones until restored.
type proxy struct {
	t      *testing.T
	l      net.Listener
	mu     sync.Mutex
	target string
	down   bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, l: l, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) setTarget(a string) {
	p.mu.Lock()
	p.target = a
	p.mu.Unlock()
}

func (p *proxy) cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, down := p.target, p.down
		p.mu.Unlock()
		if down || target == "" {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(u, c)
		go pipe(c, u)
	}
}

// sameContent fails the test if the image differs from the device, and
// says where.
func sameContent(t *testing.T, dev, img string) {
	t.Helper()
	a, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	diffs := 0
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb {
			t.Fatalf("%s has %d bytes at %d, %s has %d", dev, na, off, img, nb)
		}
		if !bytes.Equal(ba[:na], bb[:nb]) {
			for i := 0; i < na; i += 4096 {
				j := min(i+4096, na)
				if !bytes.Equal(ba[i:j], bb[i:j]) && diffs < 8 {
					t.Errorf("block at %d differs between %s and the image", off+int64(i), dev)
					diffs++
				}
			}
		}
		off += int64(na)
		if ea != nil || eb != nil {
			break
		}
	}
	if diffs > 0 {
		t.FailNow()
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func mount(t *testing.T, dev string, opts ...string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, "mount", append(append([]string{}, opts...), dev, dir)...)
	t.Cleanup(func() {
		var out []byte
		var err error
		for i := 0; i < 50; i++ {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil || strings.Contains(string(out), "not mounted") {
				return
			}
			if !strings.Contains(string(out), "busy") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		holders, _ := exec.Command("fuser", "-vm", dir).CombinedOutput()
		t.Errorf("umount %s: %v: %s\nholders:\n%s", dir, err, out, holders)
		exec.Command("umount", "-l", dir).Run()
	})
	return dir
}

var _ = context.Background
