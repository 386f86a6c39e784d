package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

// poisonStore is target storage that cannot apply a segment of some
// content, for ever (as a segment asking for a size or range the store
// cannot hold): the rest goes to the real store.
type poisonStore struct {
	store.Store
	mu       sync.Mutex
	poisoned map[[32]byte]bool
	fails    atomic.Int64
}

func (p *poisonStore) poison(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.poisoned[sha256.Sum256(b)] = true
}

func (p *poisonStore) Apply(ctx context.Context, machine, disk string, seq uint64, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	bad := p.poisoned[sha256.Sum256(b)]
	p.mu.Unlock()
	if bad {
		p.fails.Add(1)
		return errors.New("truncate current.img: file too large (injected)")
	}
	return p.Store.Apply(ctx, machine, disk, seq, path)
}

// A segment that cannot be applied wedges its disk (every later one
// waits) and shows as a problem and an alert; 'lifeboat machines discard'
// drops it with the later ones, clears the problem and the alert, makes
// the agent resync (its next upload, and the discarded segment again, are
// refused as a conflict), and the replica converges on the source after
// the resync (issue 18).
func TestDiscardPoisonedSegmentUnwedgesTheDisk(t *testing.T) {
	dir := servertest.Init(t)
	l, err := store.OpenLocal(filepath.Join(dir, server.StoreDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ps := &poisonStore{Store: l, poisoned: map[[32]byte]bool{}}
	cfg := servertest.Config(t, dir)
	cfg.Store, cfg.AlertInterval = ps, 50*time.Millisecond
	s := servertest.Start(t, cfg)
	adm := servertest.Admin(t, s, dir)
	a := servertest.Register(t, s, dir, "m1")
	if _, err := a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	block := func(fill byte) []byte { return bytes.Repeat([]byte{fill}, 4096) }
	build := func(seq uint64, cut string, ws ...servertest.Write) string {
		sg := servertest.Segment{Machine: "m1", Disk: "sda", DiskSize: diskSize, Seq: seq, Gen: seq + 1, Writes: ws}
		if cut != "" {
			sg.Cuts = append(sg.Cuts, servertest.Cut(cut))
		}
		return sg.Build(t, t.TempDir())
	}
	mustPut(t, a, "sda", 0, build(0, "p0", servertest.Write{Off: 0, Data: block(0xa0)}))
	poisoned := build(1, "p1", servertest.Write{Off: 4096, Data: block(0xbb)})
	ps.poison(t, poisoned)
	mustPut(t, a, "sda", 1, poisoned)
	mustPut(t, a, "sda", 2, build(2, "p2", servertest.Write{Off: 8192, Data: block(0xa2)}))

	// Wedged: shown in 'lifeboat machines' and alerted, nothing after it
	// applied.
	problem := func() string {
		ms, err := adm.Machines(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			for _, p := range m.Problems {
				if strings.Contains(p, "apply of disk sda failing") {
					return p
				}
			}
		}
		return ""
	}
	alerted := func() bool {
		as, err := adm.Alerts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range as.Active {
			if al.Alert == api.AlertApplyFailing && al.Machine == "m1" {
				return true
			}
		}
		return false
	}
	servertest.WaitFor(t, "the apply failure shown and alerted", func() bool { return problem() != "" && alerted() })
	if p := problem(); !strings.Contains(p, "segment 1") || !strings.Contains(p, "lifeboat machines discard m1 sda 1") {
		t.Errorf("problem %q: want segment 1 and the discard command", p)
	}
	servertest.WaitFor(t, "a few more failed applies", func() bool { return ps.fails.Load() >= 3 })
	if st, err := a.Process.DiskState(ctx(t), "sda"); err != nil || st.AppliedSeq != 0 || st.NextSeq != 3 {
		t.Fatalf("disk state %+v, %v: want segment 0 applied, 3 next (wedged at 1)", st, err)
	}

	// Only the segment the applier is stuck on can be discarded.
	_, err = adm.Discard(ctx(t), "m1", "sda", 2)
	if ae := wantStatus(t, err, http.StatusConflict); !strings.Contains(ae.Hint(), "1") {
		t.Errorf("discard of segment 2: hint %q does not name segment 1", ae.Hint())
	}
	res, err := adm.Discard(ctx(t), "m1", "sda", 1)
	if err != nil {
		t.Fatalf("discard: %v", err)
	}
	if res.Seq != 1 || res.Count != 2 || res.NextSeq != 1 || res.ProcessServer == "" {
		t.Fatalf("discard result %+v: want segments 1 and 2 dropped, next 1", res)
	}
	servertest.WaitFor(t, "the problem and the alert resolved", func() bool { return problem() == "" && !alerted() })
	pending := func() bool {
		ms, err := adm.Machines(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if strings.Contains(strings.Join(m.Problems, "\n"), "segments 1 to 2 discarded by the operator") {
				return true
			}
		}
		return false
	}
	if !pending() {
		t.Error("the pending resync is not shown in 'lifeboat machines'")
	}
	if st, err := a.Process.DiskState(ctx(t), "sda"); err != nil || st.NextSeq != 1 || st.AppliedSeq != 0 {
		t.Fatalf("disk state after the discard %+v, %v: want next 1", st, err)
	}

	// The discard holds across a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = servertest.Start(t, cfg)
	a, adm = servertest.Reconnect(t, s, a), servertest.Admin(t, s, dir)

	// The agent's next upload, and the discarded segment sent again: a
	// conflict, which makes the agent resync the disk.
	_, err = a.Process.PutSegmentFile(ctx(t), "sda", 3, build(3, "", servertest.Write{Off: 0, Data: block(0xa0)}))
	if !errors.Is(err, api.ErrSegmentConflict) {
		t.Fatalf("upload of segment 3 after the discard: %v, want a segment conflict", err)
	}
	if _, err = a.Process.PutSegmentFile(ctx(t), "sda", 1, poisoned); !errors.Is(err, api.ErrSegmentConflict) {
		t.Fatalf("the discarded segment sent again: %v, want a segment conflict", err)
	}

	// The resync: from the server's next segment, the blocks that differ
	// from the source (blocks 1 and 2; block 0 is the same).
	src := [][]byte{block(0xa0), block(0xb1), block(0xa2)}
	resync := build(1, "p3", servertest.Write{Off: 4096, Data: src[1]}, servertest.Write{Off: 8192, Data: src[2]})
	if ack, err := a.Process.PutSegmentFile(ctx(t), "sda", 1, resync); err != nil || ack.Duplicate {
		t.Fatalf("resync segment 1: %+v, %v", ack, err)
	}
	if pending() {
		t.Error("the pending resync is still shown once the resync began")
	}
	servertest.WaitFor(t, "the resync applied", func() bool {
		st, err := a.Process.DiskState(ctx(t), "sda")
		return err == nil && st.Applied && st.AppliedSeq == 1
	})
	pts, err := adm.Points(ctx(t), "m1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if p.ID == "p1" || p.ID == "p2" {
			t.Errorf("point %s of a discarded segment listed", p.ID)
		}
	}
	fr, err := adm.Failover(ctx(t), "m1", api.FailoverRequest{Point: "p3", Test: true, Out: filepath.Join(t.TempDir(), "out")})
	if err != nil {
		t.Fatalf("test failover: %v", err)
	}
	img, err := os.ReadFile(fr.Images[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range src {
		if !bytes.Equal(img[i*4096:(i+1)*4096], want) {
			t.Errorf("block %d of the replica differs from the source", i)
		}
	}

	// Both attempts are in the audit log.
	es, err := adm.Audit(ctx(t), 20)
	if err != nil {
		t.Fatal(err)
	}
	var ok, failed bool
	for _, e := range es {
		if e.Action == "discard" && strings.Contains(e.Target, "/m1/disks/sda/") {
			ok = ok || e.Result == "ok"
			failed = failed || strings.HasPrefix(e.Result, "failed")
		}
	}
	if !ok || !failed {
		t.Errorf("audit log %+v: want the refused and the done discard", es)
	}
}

// A discard of a machine served by a joined process server goes to that
// server, from the configuration server only.
func TestDiscardOnJoinedProcessServer(t *testing.T) {
	e := newScaleEnv(t)
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatal(err)
	}
	l, err := store.OpenLocalShared(e.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ps := &poisonStore{Store: l, poisoned: map[[32]byte]bool{}}
	cfg := servertest.Config(t, e.dirB)
	cfg.Roles, cfg.Store = server.Roles{Process: true}, ps
	e.b = servertest.Start(t, cfg)
	servertest.WaitFor(t, "ps2 healthy", func() bool { return e.server("ps2").Healthy })
	servertest.Register(t, e.a, e.dirA, "m1") // a tie: to the local role
	m2 := servertest.Register(t, e.a, e.dirA, "m2")
	if m2.Addr != e.b.ProcessAddr() {
		t.Fatalf("m2 assigned to %s, want ps2", m2.Addr)
	}
	servertest.WaitFor(t, "ps2 serving m2", func() bool {
		_, err := m2.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}})
		return err == nil
	})
	mustPut(t, m2, "sda", 0, seg(t, "m2", "sda", 0, 0, 0xa0))
	poisoned := seg(t, "m2", "sda", 1, 4096, 0xbb)
	ps.poison(t, poisoned)
	mustPut(t, m2, "sda", 1, poisoned)
	failing := func() bool {
		return strings.Contains(strings.Join(e.machine("m2").Problems, "\n"), "apply of disk sda failing on process server ps2")
	}
	servertest.WaitFor(t, "ps2's apply failure reported", failing)

	// Uploads are still accepted: the disk is wedged, not closed.
	if _, err := m2.Process.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m2", "sda", 2, 8192, 0xa2)); err != nil {
		t.Fatal(err)
	}
	// ps2 takes a discard from the configuration server only.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m2.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{m2.Cert}, RootCAs: pool, ServerName: "localhost"}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+e.b.ProcessAddr()+"/v1/discard/m2/sda", "application/json", strings.NewReader(`{"seq":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("discard on ps2's port with the machine's certificate: %d, want 403", resp.StatusCode)
	}
	res, err := e.admin.Discard(ctx(t), "m2", "sda", 1)
	if err != nil {
		t.Fatalf("discard through the configuration server: %v", err)
	}
	if res.ProcessServer != "ps2" || res.Seq != 1 || res.Count != 2 || res.NextSeq != 1 {
		t.Fatalf("discard result %+v", res)
	}
	servertest.WaitFor(t, "the apply failure resolved", func() bool { return !failing() })
	if _, err := m2.Process.PutSegmentFile(ctx(t), "sda", 3, seg(t, "m2", "sda", 3, 0, 0xa3)); !errors.Is(err, api.ErrSegmentConflict) {
		t.Fatalf("upload after the discard on ps2: %v, want a segment conflict", err)
	}
	// Not moved while the agent has not begun its resync: the server
	// moved to would answer it as a plain gap.
	if _, err := e.admin.Move(ctx(t), "m2", api.MoveRequest{To: "ps1"}); err == nil || !strings.Contains(err.Error(), "discarded") {
		t.Fatalf("move during a pending discard: %v, want it refused", err)
	}
	// Refusals of ps2 come back with its name and remedy.
	_, err = e.admin.Discard(ctx(t), "m2", "sda", 1)
	if ae := wantStatus(t, err, http.StatusNotFound); !strings.Contains(ae.Message, "ps2") {
		t.Errorf("refusal of ps2 does not name it: %s", ae.Message)
	}
}
