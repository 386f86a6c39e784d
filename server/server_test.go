package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

const diskSize = 1 << 20

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// countingStore wraps a store: it counts Apply calls that did work, and
// can be made to fail them.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	applied map[string]int // "machine/disk/seq" → calls
	mapped  int            // of them, from the server's map
	fail    atomic.Bool
}

func (c *countingStore) Apply(ctx context.Context, machine, disk string, seq uint64, path string) error {
	if c.fail.Load() {
		return errors.New("injected apply failure")
	}
	if err := c.Store.Apply(ctx, machine, disk, seq, path); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil {
		c.applied = map[string]int{}
	}
	c.applied[machine+"/"+disk+"/"+string(rune('0'+seq))]++
	return nil
}

// ApplyMapped is Apply from the server's map of the segment (its hot
// path), counted apart in mapped too.
func (c *countingStore) ApplyMapped(ctx context.Context, machine, disk string, seq uint64, path string, m *hrlfmt.Map) error {
	if c.fail.Load() {
		return errors.New("injected apply failure")
	}
	if err := c.Store.(*store.Local).ApplyMapped(ctx, machine, disk, seq, path, m); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil {
		c.applied = map[string]int{}
	}
	c.applied[machine+"/"+disk+"/"+string(rune('0'+seq))]++
	c.mapped++
	return nil
}

// mappedCalls counts the applies that did work from the server's map.
func (c *countingStore) mappedCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mapped
}

func (c *countingStore) calls(machine, disk string, seq uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied[machine+"/"+disk+"/"+string(rune('0'+seq))]
}

// env is a running server with its data directory and target storage.
type env struct {
	t     *testing.T
	dir   string
	cfg   server.Config
	srv   *server.Server
	local *store.Local
	store *countingStore
	// failApply makes the next opened store fail every Apply.
	failApply bool
}

func newEnv(t *testing.T, mod ...func(*server.Config)) *env {
	e := &env{t: t, dir: servertest.Init(t)}
	e.open(mod...)
	return e
}

// open (re)opens the store and the server on the data directory.
func (e *env) open(mod ...func(*server.Config)) {
	t := e.t
	l, err := store.OpenLocal(filepath.Join(e.dir, server.StoreDir))
	if err != nil {
		t.Fatal(err)
	}
	e.local = l
	e.store = &countingStore{Store: l}
	e.store.fail.Store(e.failApply)
	e.cfg = servertest.Config(t, e.dir)
	e.cfg.Store = e.store
	for _, m := range mod {
		m(&e.cfg)
	}
	e.srv = servertest.Start(t, e.cfg)
	t.Cleanup(func() { l.Close() })
}

// restart closes the server and its store and opens them again.
func (e *env) restart(mod ...func(*server.Config)) {
	if err := e.srv.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.local.Close()
	e.open(mod...)
}

func (e *env) agent(name string) *servertest.Agent {
	return servertest.Register(e.t, e.srv, e.dir, name)
}

// seg builds segment seq of disk with one write of fill bytes at off and
// the given cuts.
func seg(t *testing.T, machine, disk string, seq uint64, off int64, fill byte, cuts ...string) string {
	sg := servertest.Segment{Machine: machine, Disk: disk, DiskSize: diskSize, Seq: seq, Gen: seq + 1,
		Writes: []servertest.Write{{Off: off, Data: bytes.Repeat([]byte{fill}, 4096)}}}
	for _, c := range cuts {
		sg.Cuts = append(sg.Cuts, servertest.Cut(c))
	}
	return sg.Build(t, t.TempDir())
}

func put(t *testing.T, a *servertest.Agent, disk string, seq uint64, path string) (api.SegmentAck, error) {
	t.Helper()
	return a.Process.PutSegmentFile(ctx(t), disk, seq, path)
}

func mustPut(t *testing.T, a *servertest.Agent, disk string, seq uint64, path string) api.SegmentAck {
	t.Helper()
	ack, err := put(t, a, disk, seq, path)
	if err != nil {
		t.Fatalf("put segment %d: %v", seq, err)
	}
	return ack
}

func wantStatus(t *testing.T, err error, status int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err %v, want an APIError %d", err, status)
	}
	if ae.Status != status {
		t.Fatalf("status %d (%s), want %d", ae.Status, ae.Message, status)
	}
	if ae.Message == "" || ae.Hint() == "" {
		t.Errorf("error answer without error or hint: %+v", ae)
	}
	return ae
}

func (e *env) waitApplied(a *servertest.Agent, disk string, next uint64) {
	servertest.WaitFor(e.t, "segments applied", func() bool {
		st, err := a.Process.DiskState(ctx(e.t), disk)
		return err == nil && st.Applied && st.AppliedSeq+1 == next
	})
}

// cacheFiles lists the files of a disk's cache directory.
func (e *env) cacheFiles(machine, disk string) []string {
	ents, _ := os.ReadDir(filepath.Join(e.dir, server.CacheDir, machine, disk))
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	return names
}

func TestSegmentsHappyPath(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	m, err := a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "web1" || len(m.Disks) != 1 || m.Disks[0].Size != diskSize {
		t.Errorf("machine %+v", m)
	}
	for seq := range uint64(3) {
		var cuts []string
		if seq == 1 {
			cuts = []string{"p1"}
		}
		ack := mustPut(t, a, "sda", seq, seg(t, "web1", "sda", seq, int64(seq)*4096, byte('a'+seq), cuts...))
		if ack.Acked != seq || ack.Duplicate {
			t.Errorf("ack %+v for segment %d", ack, seq)
		}
	}
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil || st.NextSeq != 3 {
		t.Fatalf("state %+v, %v", st, err)
	}
	e.waitApplied(a, "sda", 3)
	// The applied segments left the cache.
	servertest.WaitFor(t, "cache emptied", func() bool {
		return !slices.ContainsFunc(e.cacheFiles("web1", "sda"), func(n string) bool { return strings.HasSuffix(n, ".hrl") })
	})
	ps, err := a.Process.Point(ctx(t), "p1")
	if err != nil || !ps.Durable || !ps.Listed {
		t.Errorf("point p1: %+v, %v", ps, err)
	}
	if ps, _ := a.Process.Point(ctx(t), "nope"); ps.Durable || ps.Listed {
		t.Errorf("unknown point: %+v", ps)
	}
	// Hashes reflect every write.
	hs, err := a.Process.Hashes(ctx(t), "sda", 0, 4*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		want := sha256.Sum256(bytes.Repeat([]byte{byte('a' + i)}, 4096))
		if i == 3 {
			want = sha256.Sum256(make([]byte, 4096))
		}
		if h != want {
			t.Errorf("hash of block %d differs", i)
		}
	}
	// The admin API lists the machine and its point.
	adm := servertest.Admin(t, e.srv, e.dir)
	ms, err := adm.Machines(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "web1" || ms[0].Points != 1 || ms[0].Registered == nil || ms[0].LastSeen == nil ||
		len(ms[0].Disks) != 1 || ms[0].Disks[0].NextSeq != 3 || ms[0].LatestPoint == nil || ms[0].LatestPoint.ID != "p1" {
		t.Errorf("machines: %+v", ms)
	}
	pts, err := adm.Points(ctx(t), "web1")
	if err != nil || len(pts) != 1 || pts[0].ID != "p1" || pts[0].Kind != "crash" || !slices.Equal(pts[0].Disks, []string{"sda"}) {
		t.Errorf("points %+v, %v", pts, err)
	}
	if _, err := adm.Points(ctx(t), "nobody"); err == nil {
		t.Error("points of an unknown machine")
	} else {
		wantStatus(t, err, http.StatusNotFound)
	}
}

func TestDuplicateAndOutOfOrder(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	s0 := seg(t, "web1", "sda", 0, 0, 'x')
	mustPut(t, a, "sda", 0, s0)
	e.waitApplied(a, "sda", 1)
	if n := e.store.calls("web1", "sda", 0); n != 1 {
		t.Fatalf("segment 0 applied %d times", n)
	}
	// A duplicate is acknowledged and ignored when it is the segment
	// accepted; another segment under its number is a conflict (issue
	// 18: never acknowledge what differs from what was accepted).
	ack := mustPut(t, a, "sda", 0, s0)
	if !ack.Duplicate || ack.Acked != 0 {
		t.Errorf("ack of a duplicate: %+v", ack)
	}
	if _, err := put(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'y')); !errors.Is(err, api.ErrSegmentConflict) {
		t.Errorf("a different segment 0: %v, want a segment conflict", err)
	}
	// A gap is refused with the expected sequence number.
	_, err := put(t, a, "sda", 2, seg(t, "web1", "sda", 2, 0, 'z'))
	ae := wantStatus(t, err, http.StatusConflict)
	if ae.Expected == nil || *ae.Expected != 1 {
		t.Errorf("expected %v, want 1", ae.Expected)
	}
	time.Sleep(100 * time.Millisecond)
	if n := e.store.calls("web1", "sda", 0); n != 1 {
		t.Errorf("segment 0 applied %d times", n)
	}
	hs, err := a.Process.Hashes(ctx(t), "sda", 0, 4096, 4096)
	if err != nil || hs[0] != sha256.Sum256(bytes.Repeat([]byte{'x'}, 4096)) {
		t.Errorf("replica changed by a duplicate (%v)", err)
	}
	st, _ := a.Process.DiskState(ctx(t), "sda")
	if st.NextSeq != 1 {
		t.Errorf("next_seq %d, want 1", st.NextSeq)
	}
}

func TestBadSegments(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxSegmentBytes = 64 << 10 })
	a := e.agent("web1")
	e.agent("web2")
	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'g', "p0"))
	e.waitApplied(a, "sda", 1)
	good := seg(t, "web1", "sda", 1, 4096, 'h', "p1")
	raw, _ := os.ReadFile(good)

	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "bad.hrl")
		os.WriteFile(p, b, 0o600)
		return p
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 0x10
	big := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: 1, Gen: 2,
		Writes: []servertest.Write{{Off: 0, Data: randomBytes(100 << 10)}}}
	cases := []struct {
		name   string
		path   string
		status int
	}{
		{"truncated", write(raw[:len(raw)-10]), http.StatusBadRequest},
		{"trailer missing", write(raw[:len(raw)/2]), http.StatusBadRequest},
		{"bit flipped", write(flipped), http.StatusBadRequest},
		{"empty", write(nil), http.StatusBadRequest},
		{"not a segment", write([]byte("hello, world\n")), http.StatusBadRequest},
		{"foreign machine", seg(t, "web2", "sda", 1, 0, 'f'), http.StatusForbidden},
		{"wrong disk in header", seg(t, "web1", "sdb", 1, 0, 'w'), http.StatusBadRequest},
		{"wrong seq in header", seg(t, "web1", "sda", 5, 0, 'q'), http.StatusBadRequest},
		{"too large", big.Build(t, t.TempDir()), http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.cacheFiles("web1", "sda")
			_, err := put(t, a, "sda", 1, c.path)
			wantStatus(t, err, c.status)
			st, err := a.Process.DiskState(ctx(t), "sda")
			if err != nil || st.NextSeq != 1 || st.AppliedSeq != 0 {
				t.Errorf("state after a bad segment: %+v, %v", st, err)
			}
			if after := e.cacheFiles("web1", "sda"); !slices.Equal(before, after) {
				t.Errorf("cache changed: %v → %v", before, after)
			}
		})
	}
	// A body that lies about its length (chunked, cut short by the
	// client) is refused the same way.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(raw[:100])
		pw.CloseWithError(errors.New("agent died"))
	}()
	if _, err := a.Process.PutSegment(ctx(t), "sda", 1, pr, -1); err == nil {
		t.Error("cut-short upload acknowledged")
	}
	// A body without a length that grows past the limit is cut off.
	bigRaw, _ := os.ReadFile(big.Build(t, t.TempDir()))
	_, err := a.Process.PutSegment(ctx(t), "sda", 1, bytes.NewReader(bigRaw), -1)
	wantStatus(t, err, http.StatusRequestEntityTooLarge)
	if files := e.cacheFiles("web1", "sda"); slices.ContainsFunc(files, func(n string) bool { return strings.HasPrefix(n, ".tmp-") }) {
		t.Errorf("temporary files left: %v", files)
	}
	// Bad disk sets are refused.
	_, err = a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "../etc", Size: 1}})
	wantStatus(t, err, http.StatusBadRequest)
	_, err = a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: 1}, {Name: "sda", Size: 1}})
	wantStatus(t, err, http.StatusBadRequest)
	// Nothing accepted changed: the point of segment 0 is still there,
	// and p1 of the rejected uploads is not durable.
	if ps, _ := a.Process.Point(ctx(t), "p0"); !ps.Durable || !ps.Listed {
		t.Errorf("p0 after bad segments: %+v", ps)
	}
	if ps, _ := a.Process.Point(ctx(t), "p1"); ps.Durable {
		t.Errorf("p1 durable before its segment was accepted: %+v", ps)
	}
	if n := e.store.calls("web1", "sda", 1); n != 0 {
		t.Errorf("a bad segment was applied %d times", n)
	}
	// The server still serves: the good segment goes through.
	if ack := mustPut(t, a, "sda", 1, good); ack.Acked != 1 || ack.Duplicate {
		t.Errorf("ack %+v", ack)
	}
	e.waitApplied(a, "sda", 2)
	if ps, _ := a.Process.Point(ctx(t), "p1"); !ps.Durable || !ps.Listed {
		t.Errorf("p1: %+v", ps)
	}
	// Bad names in URLs are refused before touching any file.
	_, err = put(t, a, "..", 0, good)
	if err == nil {
		t.Error("disk .. accepted")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestRestartKeepsNextSeq(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	if _, err := a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}, {Name: "sdb", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a', "p0"))
	mustPut(t, a, "sdb", 0, seg(t, "web1", "sdb", 0, 0, 'A', "p0"))
	e.waitApplied(a, "sda", 1)
	e.waitApplied(a, "sdb", 1)
	// Segments 1 and 2 of sda are acknowledged but cannot be applied.
	e.store.fail.Store(true)
	mustPut(t, a, "sda", 1, seg(t, "web1", "sda", 1, 4096, 'b', "p1"))
	mustPut(t, a, "sda", 2, seg(t, "web1", "sda", 2, 8192, 'c'))
	if ps, _ := a.Process.Point(ctx(t), "p1"); ps.Durable {
		t.Errorf("p1 durable with sdb lacking it: %+v", ps)
	}

	e.failApply = true
	e.restart(func(c *server.Config) { c.HashesWait = 200 * time.Millisecond })
	a = servertest.Reconnect(t, e.srv, a)
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil || st.NextSeq != 3 || st.AppliedSeq != 0 || !st.Applied {
		t.Fatalf("sda after restart: %+v, %v", st, err)
	}
	// Hashes wait for the acknowledged segments, then give up with 503.
	_, err = a.Process.Hashes(ctx(t), "sda", 0, 4096, 4096)
	wantStatus(t, err, http.StatusServiceUnavailable)

	mustPut(t, a, "sdb", 1, seg(t, "web1", "sdb", 1, 4096, 'B', "p1"))
	if ps, _ := a.Process.Point(ctx(t), "p1"); !ps.Durable || ps.Listed {
		t.Errorf("p1 durable on both disks, not applied: %+v", ps)
	}

	e.failApply = false
	e.restart()
	a = servertest.Reconnect(t, e.srv, a)
	e.waitApplied(a, "sda", 3)
	e.waitApplied(a, "sdb", 2)
	if ps, _ := a.Process.Point(ctx(t), "p1"); !ps.Durable || !ps.Listed {
		t.Errorf("p1 after apply: %+v", ps)
	}
	hs, err := a.Process.Hashes(ctx(t), "sda", 0, 3*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []byte("abc") {
		if hs[i] != sha256.Sum256(bytes.Repeat([]byte{c}, 4096)) {
			t.Errorf("block %d of sda differs", i)
		}
	}
	e.restart()
	a = servertest.Reconnect(t, e.srv, a)
	if st, _ := a.Process.DiskState(ctx(t), "sda"); st.NextSeq != 3 || st.AppliedSeq != 2 {
		t.Errorf("sda after a restart with an empty cache: %+v", st)
	}
	// The next segment is still accepted, and nothing was applied twice
	// in a way that counts.
	mustPut(t, a, "sda", 3, seg(t, "web1", "sda", 3, 0, 'd'))
	e.waitApplied(a, "sda", 4)
}

// A server that died after applying a segment but before deleting it
// from the cache, and in the middle of receiving another, starts clean.
func TestRestartAfterCrashLeftovers(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	s0 := seg(t, "web1", "sda", 0, 0, 'a')
	mustPut(t, a, "sda", 0, s0)
	e.waitApplied(a, "sda", 1)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(e.dir, server.CacheDir, "web1", "sda")
	raw, _ := os.ReadFile(s0)
	os.WriteFile(filepath.Join(cache, hrlfmt.SegmentName(0)), raw, 0o600)
	os.WriteFile(filepath.Join(cache, ".tmp-123.hrl"), raw[:50], 0o600)
	e.local.Close()
	e.open()
	a = servertest.Reconnect(t, e.srv, a)
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil || st.NextSeq != 1 || st.AppliedSeq != 0 {
		t.Fatalf("state %+v, %v", st, err)
	}
	if files := e.cacheFiles("web1", "sda"); slices.ContainsFunc(files, func(n string) bool { return strings.HasSuffix(n, ".hrl") }) {
		t.Errorf("leftovers not removed: %v", files)
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	url := "https://" + e.srv.APIAddr() + api.PathMachines
	caPEM, _ := os.ReadFile(filepath.Join(e.dir, pki.CACertFile))
	other := servertest.Init(t)
	otherAdmin, err := tls.LoadX509KeyPair(filepath.Join(other, pki.AdminCertFile), filepath.Join(other, pki.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		certs  []tls.Certificate
		status int
	}{
		{"no certificate", nil, http.StatusUnauthorized},
		{"agent certificate", []tls.Certificate{a.Cert}, http.StatusForbidden},
		{"admin of another CA", []tls.Certificate{otherAdmin}, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool := newPool(t, caPEM)
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: c.certs}}}
			defer hc.CloseIdleConnections()
			for _, req := range []struct{ method, path string }{
				{"GET", api.PathMachines}, {"GET", "/v1/machines/web1/points"}, {"POST", "/v1/machines/web1/failover"},
			} {
				r, _ := http.NewRequestWithContext(ctx(t), req.method, "https://"+e.srv.APIAddr()+req.path, strings.NewReader(`{"point":"latest","out":"/tmp/x"}`))
				resp, err := hc.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status || !bytes.Contains(body, []byte(`"hint"`)) {
					t.Errorf("%s %s: %d %s, want %d with a hint", req.method, req.path, resp.StatusCode, body, c.status)
				}
			}
		})
	}
	_ = url
	// The admin certificate cannot replicate.
	adminCert, _ := tls.LoadX509KeyPair(filepath.Join(e.dir, pki.AdminCertFile), filepath.Join(e.dir, pki.AdminKeyFile))
	p, err := client.NewProcess(e.srv.ProcessAddr(), adminCert, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	_, err = p.DiskState(ctx(t), "sda")
	wantStatus(t, err, http.StatusForbidden)
	_, err = p.PutSegmentFile(ctx(t), "sda", 0, seg(t, "admin", "sda", 0, 0, 'x'))
	wantStatus(t, err, http.StatusForbidden)
}

func TestProcessTLS(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	caPEM, _ := os.ReadFile(filepath.Join(e.dir, pki.CACertFile))
	pool := newPool(t, caPEM)
	dial := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", e.srv.ProcessAddr(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// With TLS 1.3 the server checks the client certificate after
		// the client's handshake is done: a read shows its verdict.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("GET /v1/disks/sda/state HTTP/1.1\r\nHost: x\r\n\r\n"))
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := dial(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{a.Cert}, MinVersion: tls.VersionTLS13}); err != nil {
		t.Fatalf("TLS 1.3 with a machine certificate: %v", err)
	}
	if err := dial(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{a.Cert}, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("TLS 1.2 client accepted")
	}
	if err := dial(&tls.Config{RootCAs: pool}); err == nil {
		t.Error("client without certificate accepted")
	}
	other := servertest.Init(t)
	foreign, _ := tls.LoadX509KeyPair(filepath.Join(other, pki.AdminCertFile), filepath.Join(other, pki.AdminKeyFile))
	if err := dial(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{foreign}}); err == nil {
		t.Error("certificate of another CA accepted")
	}
	// The server keeps serving after refused handshakes.
	if _, err := a.Process.DiskState(ctx(t), "sda"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	p, err := client.NewProcess(e.srv.ProcessAddr()+"/v2", a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	_, err = p.DiskState(ctx(t), "sda")
	wantStatus(t, err, http.StatusNotFound)
}

func TestFailoverAPI(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a', "p0"))
	sg := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: 1, Gen: 2,
		Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{'b'}, 4096)}},
		Cuts:   []hrlfmt.Cut{{Kind: hrlfmt.CutApp, PointID: "p1", Time: time.Now()}}}
	mustPut(t, a, "sda", 1, sg.Build(t, t.TempDir()))
	mustPut(t, a, "sda", 2, seg(t, "web1", "sda", 2, 0, 'c', "p2"))
	e.waitApplied(a, "sda", 3)
	adm := servertest.Admin(t, e.srv, e.dir)
	for _, c := range []struct {
		sel, id string
		fill    byte
	}{{"latest", "p2", 'c'}, {"latest-app", "p1", 'b'}, {"p0", "p0", 'a'}} {
		out := filepath.Join(t.TempDir(), "out")
		res, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: c.sel, Test: true, Out: out})
		if err != nil {
			t.Fatalf("failover %s: %v", c.sel, err)
		}
		if res.Point.ID != c.id || len(res.Images) != 1 || res.Images[0].Path != filepath.Join(out, "sda.img") || res.Images[0].Size != diskSize {
			t.Errorf("failover %s: %+v", c.sel, res)
		}
		img, _ := os.ReadFile(filepath.Join(out, "sda.img"))
		if len(img) != diskSize || img[0] != c.fill {
			t.Errorf("image at %s: %d bytes, first %q", c.sel, len(img), img[:1])
		}
	}
	_, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "nope", Out: t.TempDir()})
	wantStatus(t, err, http.StatusNotFound)
	_, err = adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Out: "relative"})
	wantStatus(t, err, http.StatusBadRequest)
	out := t.TempDir()
	if _, err := adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Out: out}); err != nil {
		t.Fatal(err)
	}
	_, err = adm.Failover(ctx(t), "web1", api.FailoverRequest{Point: "latest", Out: out})
	wantStatus(t, err, http.StatusConflict)
}
