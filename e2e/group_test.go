//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// The cross-disk writer: write k goes to slot k/2 of the file on disk A
// (k even) or disk B (k odd), O_DIRECT and fdatasync, and write k+1 starts
// only once write k completed. A consistent group point holds a prefix of
// that sequence: slots 0..n-1 stamped on each disk, with n_A = n_B or
// n_A = n_B + 1.
const (
	xSlot    = 4096
	xSlots   = 4096 // per disk: 16 MiB files
	xMagic   = 0x4c4946454230474b
	xPattern = 0xa5
)

// crossWriter is the alternating stamped writer.
type crossWriter struct {
	files [2]*os.File
	next  atomic.Int64 // the next k
	stop  chan struct{}
	done  chan error
}

// newCrossFile makes a file of zeros, allocated and durable, so the
// writer's O_DIRECT writes change no filesystem metadata.
func newCrossFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "cross.dat")
	if err := os.WriteFile(p, make([]byte, xSlot*xSlots), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sync", "-f", p)
	return p
}

func startCrossWriter(t *testing.T, a, b string) *crossWriter {
	t.Helper()
	w := &crossWriter{stop: make(chan struct{}), done: make(chan error, 1)}
	for i, p := range []string{a, b} {
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.files[i] = f
	}
	buf, err := unix.Mmap(-1, 0, xSlot, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer unix.Munmap(buf)
		for k := int64(0); k < 2*xSlots; k++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			for i := range buf {
				buf[i] = xPattern
			}
			binary.LittleEndian.PutUint64(buf[0:], xMagic)
			binary.LittleEndian.PutUint64(buf[8:], uint64(k))
			f := w.files[k%2]
			if _, err := f.WriteAt(buf, (k/2)*xSlot); err != nil {
				w.done <- fmt.Errorf("write %d: %w", k, err)
				return
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				w.done <- fmt.Errorf("fdatasync %d: %w", k, err)
				return
			}
			w.next.Store(k + 1)
			time.Sleep(2 * time.Millisecond)
		}
		w.done <- nil
	}()
	t.Cleanup(func() { w.halt(t) })
	return w
}

// halt stops the writer (once) and closes its files.
func (w *crossWriter) halt(t *testing.T) {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Errorf("cross writer: %v", err)
	}
	for _, f := range w.files {
		f.Close()
	}
}

// stampedPrefix reads a cross file from an image and returns how many
// slots from the start carry the stamps of disk d (0: A, 1: B); it fails
// the test if a stamped slot follows an unstamped one or a stamp is wrong.
func stampedPrefix(t *testing.T, path string, d int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, gap := 0, false
	for i := 0; i < xSlots; i++ {
		s := b[i*xSlot : (i+1)*xSlot]
		if binary.LittleEndian.Uint64(s) != xMagic {
			if !isZeros(s) {
				t.Fatalf("%s slot %d: neither zeros nor a stamp", path, i)
			}
			gap = true
			continue
		}
		if k := binary.LittleEndian.Uint64(s[8:]); k != uint64(2*i+d) {
			t.Fatalf("%s slot %d: stamp %d, want %d", path, i, k, 2*i+d)
		}
		if gap {
			t.Fatalf("%s: slot %d is stamped after an unstamped slot: not a prefix", path, i)
		}
		n++
	}
	return n
}

func isZeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type groupResult struct {
	ID     string   `json:"id"`
	OK     bool     `json:"ok"`
	Phase  string   `json:"phase"`
	Failed []string `json:"failed"`
	Error  string   `json:"error"`
}

type groupInfo struct {
	Coordinator string `json:"coordinator"`
	Members     []struct {
		Machine string `json:"machine"`
		Addr    string `json:"addr"`
	} `json:"members"`
	LastResult *groupResult `json:"last_result"`
	Problems   []string     `json:"problems"`
}

func (s *server) group(name string) groupInfo {
	s.t.Helper()
	out, err := s.lifeboat("group", "show", name, "--json")
	if err != nil {
		s.t.Fatal(err)
	}
	var g groupInfo
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		s.t.Fatalf("group show --json: %v: %q", err, out)
	}
	return g
}

// waitMembers waits until every member of the group reported its listen
// address.
func (s *server) waitMembers(name string) groupInfo {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g := s.group(name)
		ok := len(g.Members) > 0
		for _, m := range g.Members {
			ok = ok && m.Addr != ""
		}
		if ok {
			return g
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("members of %s did not report their group address: %+v", name, g)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *server) groupPoint(name string) (groupResult, error) {
	out, err := s.lifeboat("group", "point", name, "--wait", "90s", "--json")
	var r groupResult
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		return r, fmt.Errorf("group point: %v (output %q, json: %v)", err, out, jerr)
	}
	return r, err
}

// TestGroupPoints: two agents, each with its own ext4 loop device, in one
// group; a writer alternates stamped writes between the two filesystems.
// Every group point holds a prefix of the writes across both disks. Then
// one agent is stopped: the next group point fails with a clear error,
// while replication of both goes on.
func TestGroupPoints(t *testing.T) {
	requireE2E(t)
	var mnts [2]string
	var loops [2]*testenv.LoopDevice
	for i := range loops {
		loops[i] = testenv.NewLoop(t, 128*mib)
		run(t, "mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", loops[i].Path)
		mnts[i] = mount(t, loops[i].Path)
	}
	files := [2]string{newCrossFile(t, mnts[0]), newCrossFile(t, mnts[1])}
	srv := startServer(t)
	noScripts := t.TempDir()
	names := [2]string{"grp-a", "grp-b"}
	var ags [2]*agent
	for i, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		ags[i] = startAgent(t, srv, names[i], []string{loops[i].Path}, "--group-listen", ip+":0", "--group-timeout", "5s",
			"--point-interval", "2s", "--app-interval", "-1s", "--scripts", noScripts)
	}
	for _, a := range ags {
		a.bookmark() // synchronised
	}
	if _, err := srv.lifeboat("group", "create", "g1", "--machines", "grp-b,grp-a", "--interval", "-1s"); err != nil {
		t.Fatal(err)
	}
	if g := srv.waitMembers("g1"); g.Coordinator != "grp-a" {
		t.Fatalf("coordinator %q, want grp-a (first by name)", g.Coordinator)
	}

	w := startCrossWriter(t, files[0], files[1])
	var ids []string
	for len(ids) < 3 {
		time.Sleep(700 * time.Millisecond)
		r, err := srv.groupPoint("g1")
		if err != nil || !r.OK {
			t.Fatalf("group point: %v %+v", err, r)
		}
		ids = append(ids, r.ID)
		t.Logf("group point %s after write %d", r.ID, w.next.Load())
	}
	// Listed once both parts are durable: one point across both machines.
	var listed []struct {
		ID       string   `json:"id"`
		Kind     string   `json:"kind"`
		Machines []string `json:"machines"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := srv.lifeboat("points", "--group", "g1", "--json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatal(err)
		}
		if len(listed) >= len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group points listed %+v; want %v", listed, ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, p := range listed {
		if p.ID != ids[i] || p.Kind != "group" || strings.Join(p.Machines, ",") != "grp-a,grp-b" {
			t.Fatalf("group point %d listed as %+v; want %s, kind group, machines grp-a,grp-b", i, p, ids[i])
		}
	}
	for _, n := range names {
		found := false
		for _, p := range srv.points(n) {
			found = found || p.ID == ids[0] && p.Kind == "group"
		}
		if !found {
			t.Fatalf("%s does not list its part of group point %s as kind group", n, ids[0])
		}
	}

	// Fail over the group at each point; the cross-disk prefix holds.
	prevTotal := -1
	for _, id := range ids {
		out := t.TempDir()
		if _, err := srv.lifeboat("failover", "--group", "g1", "--point", id, "--test", "--out", out); err != nil {
			t.Fatal(err)
		}
		var n [2]int
		for i := range names {
			img := filepath.Join(out, names[i], filepath.Base(loops[i].Path)+".img")
			il := testenv.NewLoop(t, 0, testenv.WithBacking(img))
			m := mount(t, il.Path, "-o", "ro")
			n[i] = stampedPrefix(t, filepath.Join(m, "cross.dat"), i)
		}
		if n[0] != n[1] && n[0] != n[1]+1 {
			t.Errorf("group point %s: %d writes on A, %d on B: not a prefix of the alternating sequence", id, n[0], n[1])
		}
		total := n[0] + n[1]
		t.Logf("group point %s holds writes 0..%d", id, total-1)
		if total <= prevTotal {
			t.Errorf("group point %s holds %d writes, not more than the previous point's %d: the writer did not run between points", id, total, prevTotal)
		}
		prevTotal = total
	}
	if prevTotal <= 0 {
		t.Fatal("no group point holds any write: the test checked nothing")
	}
	w.halt(t)

	// One agent stopped: the group point fails, naming it; replication of
	// the other goes on, and of the stopped one once it continues.
	ags[1].p.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			ags[1].p.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	crashBefore := countKind(srv.points("grp-a"), "crash")
	r, err := srv.groupPoint("g1")
	if err == nil || r.OK {
		t.Fatalf("group point with grp-b stopped: %+v, err %v; want a failure", r, err)
	}
	if len(r.Failed) != 1 || r.Failed[0] != "grp-b" || r.Error == "" {
		t.Fatalf("failed group point %+v; want grp-b named as failed with an error", r)
	}
	t.Logf("group point with grp-b stopped: failed at %s: %s", r.Phase, r.Error)
	g := srv.group("g1")
	if g.LastResult == nil || g.LastResult.OK || len(g.Problems) == 0 {
		t.Fatalf("group show after the failure: %+v; want the failed result and a problem", g)
	}
	if st, _ := ags[0].ctl("status"); !strings.Contains(st, "group point failed") {
		t.Errorf("agentctl status of the coordinator does not show the failed group point:\n%s", st)
	}
	// The live one's crash points keep coming.
	deadline = time.Now().Add(60 * time.Second)
	for countKind(srv.points("grp-a"), "crash") < crashBefore+2 {
		if time.Now().After(deadline) {
			t.Fatal("grp-a cut no new crash point while grp-b was stopped")
		}
		time.Sleep(500 * time.Millisecond)
	}
	ags[1].p.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	ags[1].bookmark()
	ags[0].bookmark()
	// And the group works again.
	if r, err := srv.groupPoint("g1"); err != nil || !r.OK {
		t.Fatalf("group point after grp-b continued: %v %+v", err, r)
	}
}

func countKind(ps []point, kind string) int {
	n := 0
	for _, p := range ps {
		if p.Kind == kind {
			n++
		}
	}
	return n
}

// TestGroupMemberThawsAlone: a coordinator that freezes a member and then
// says nothing more does not keep it frozen: past --group-frozen-max the
// member thaws on its own, and says why in its status.
func TestGroupMemberThawsAlone(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 128*mib)
	run(t, "mkfs.ext4", "-q", loop.Path)
	mnt := mount(t, loop.Path)
	file := newCrossFile(t, mnt)
	srv := startServer(t)
	ag := startAgent(t, srv, "thaw-b", []string{loop.Path}, "--group-listen", "127.0.0.3:0", "--group-timeout", "3s",
		"--group-frozen-max", "4s", "--app-interval", "-1s", "--scripts", t.TempDir())
	ag.bookmark()

	// A fake coordinator: a machine registered with the passphrase, first
	// by name in the group, that speaks the group protocol by hand.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pass, err := os.ReadFile(filepath.Join(srv.data, "passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	certPEM, caPEM, _, err := client.Register(ctx, srv.api, "thaw-a", strings.TrimSpace(string(pass)), key)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := srv.lifeboat("group", "create", "g2", "--machines", "thaw-a,thaw-b", "--interval", "-1s"); err != nil {
		t.Fatal(err)
	}
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		for _, m := range srv.group("g2").Members {
			if m.Machine == "thaw-b" {
				addr = m.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("thaw-b did not report its group address")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The member's certificate must verify against the CA.
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err == nil && c.Subject.CommonName != "thaw-b" {
				err = fmt.Errorf("member answers as %q", c.Subject.CommonName)
			}
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	say := func(op string) {
		t.Helper()
		fmt.Fprintf(conn, `{"op":%q,"group":"g2","id":"6a1f0c1e-0000-4000-8000-000000000001","machine":"thaw-a"}`+"\n", op)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		var m struct {
			Op    string `json:"op"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Op != op || !m.OK {
			t.Fatalf("%s answered %q (%v)", op, line, err)
		}
	}
	say("prepare")
	say("freeze")
	frozenAt := time.Now()
	// Frozen: a write to the filesystem waits.
	wrote := make(chan time.Duration, 1)
	go func() {
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err == nil {
			f.WriteAt([]byte("after the freeze"), 0)
			f.Sync()
			f.Close()
		}
		wrote <- time.Since(frozenAt)
	}()
	select {
	case d := <-wrote:
		t.Fatalf("a write completed %s after the freeze: the filesystem was not frozen", d)
	case <-time.After(1500 * time.Millisecond):
	}
	// The coordinator says nothing more, and keeps its connection: the
	// member thaws on its own after --group-frozen-max (4 s).
	select {
	case d := <-wrote:
		t.Logf("write completed %s after the freeze", d)
		if d < 3*time.Second {
			t.Errorf("thawed after %s, before the 4 s hard limit", d)
		}
	case <-time.After(40 * time.Second):
		exec.Command("fsfreeze", "--unfreeze", mnt).Run()
		t.Fatal("the member stayed frozen 40 s after its coordinator went silent")
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		st, _ := ag.ctl("status")
		if strings.Contains(st, "group point failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agentctl status does not show the abandoned group point:\n%s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Replication goes on.
	ag.bookmark()
}
