package server_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// mixedSeg builds segment seq of web1/sda with a raw DATA record (random
// bytes, which lz4 cannot shrink), an lz4 one, a ZERO record and a cut.
func mixedSeg(t *testing.T, seq uint64, raw []byte) string {
	sg := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: seq, Gen: seq + 1,
		Writes: []servertest.Write{
			{Off: 0, Data: raw},
			{Off: 8192, Data: bytes.Repeat([]byte{'z'}, 8192)},
			{Off: 16384, Zero: 4096},
		},
		Cuts: []hrlfmt.Cut{servertest.Cut("p" + string(rune('0'+seq)))}}
	return sg.Build(t, t.TempDir())
}

// The hot path: a received segment is applied from the server's map of it
// (no second decoding), and the replica is what the segment says, for raw
// and lz4 DATA and for ZERO records.
func TestApplyFromReceiptMap(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	raw := randomBytes(8192)
	p0 := mixedSeg(t, 0, raw)
	s, err := hrlfmt.VerifySegment(p0)
	if err != nil || s.Records != 4 {
		t.Fatalf("test segment: %+v, %v", s, err)
	}
	mustPut(t, a, "sda", 0, p0)
	e.waitApplied(a, "sda", 1)
	if n := e.store.mappedCalls(); n != 1 {
		t.Fatalf("%d applies from the receipt's map, want 1", n)
	}
	hs, err := a.Process.Hashes(ctx(t), "sda", 0, 20480, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{raw[:4096], raw[4096:], bytes.Repeat([]byte{'z'}, 4096), bytes.Repeat([]byte{'z'}, 4096), make([]byte, 4096)}
	for i, w := range want {
		if hs[i] != sha256.Sum256(w) {
			t.Errorf("block %d of the replica differs from the segment", i)
		}
	}
	if ps, _ := a.Process.Point(ctx(t), "p0"); !ps.Durable || !ps.Listed {
		t.Errorf("point p0: %+v", ps)
	}
}

// The cold path: a segment acknowledged before a restart is read and
// checked again from the cache when the server comes back, so a cache
// file damaged while the server was down is never applied: the applier
// reports the damage and the replica keeps what it had.
func TestRestartCorruptCacheNotApplied(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a'))
	e.waitApplied(a, "sda", 1)
	// Segment 1 is acknowledged but not applied before the server stops.
	e.store.fail.Store(true)
	raw := randomBytes(8192)
	mustPut(t, a, "sda", 1, mixedSeg(t, 1, raw))
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	e.local.Close()

	// Damage one byte of the raw DATA record's data in the cache.
	cached := filepath.Join(e.dir, server.CacheDir, "web1", "sda", hrlfmt.SegmentName(1))
	f, err := os.Open(cached)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hrlfmt.Scan(f)
	f.Close()
	if err != nil || len(m.Records) == 0 || m.Records[0].Type != hrlfmt.RecData || m.Records[0].Compression != hrlfmt.CompressNone {
		t.Fatalf("cached segment: %+v, %v", m, err)
	}
	off, _ := m.Records[0].DataSpan()
	b, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	b[off+100] ^= 0xff
	if err := os.WriteFile(cached, b, 0o600); err != nil {
		t.Fatal(err)
	}

	e.failApply = false
	e.open()
	a = servertest.Reconnect(t, e.srv, a)
	adm := servertest.Admin(t, e.srv, e.dir)
	var problems []string
	servertest.WaitFor(t, "the apply of the damaged segment to fail", func() bool {
		ms, err := adm.Machines(ctx(t))
		if err != nil || len(ms) != 1 {
			return false
		}
		problems = ms[0].Problems
		return len(problems) > 0
	})
	if !strings.Contains(strings.Join(problems, "; "), "checksum") {
		t.Errorf("problems %q do not name the damage", problems)
	}
	st, err := a.Process.DiskState(ctx(t), "sda")
	if err != nil || st.AppliedSeq != 0 || st.NextSeq != 2 {
		t.Fatalf("disk state %+v, %v: the damaged segment 1 counts as applied", st, err)
	}
	if n := e.store.mappedCalls(); n != 0 {
		t.Errorf("%d applies from a map after the restart, want 0 (no map survives a restart)", n)
	}
	// Nothing of segment 1 reached the replica.
	img, err := os.ReadFile(filepath.Join(e.dir, server.StoreDir, "machines", "web1", "disks", "sda", "current.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img[:4096], bytes.Repeat([]byte{'a'}, 4096)) || !bytes.Equal(img[4096:8192], make([]byte, 4096)) || bytes.Contains(img, raw[:64]) {
		t.Errorf("the replica holds data of the damaged segment")
	}
	infos, err := e.local.Disks(ctx(t), "web1")
	if err != nil || len(infos) != 1 || infos[0].AppliedSeq != 0 {
		t.Errorf("store: %+v, %v", infos, err)
	}
	// The agent sending segment 1 again does not help (it is durable),
	// but the server keeps serving: another disk replicates.
	if _, err := a.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}, {Name: "sdb", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, a, "sdb", 0, seg(t, "web1", "sdb", 0, 0, 'B'))
	e.waitApplied(a, "sdb", 1)
}

// A cache file replaced after its receipt (another file under the name) is
// not applied from the receipt's map: the applier checks it again.
func TestMapNotUsedForReplacedFile(t *testing.T) {
	e := newEnv(t)
	a := e.agent("web1")
	// The applier is stuck on segment 0 while segment 1 comes in: the
	// map of segment 1 waits for it.
	e.store.fail.Store(true)
	mustPut(t, a, "sda", 0, seg(t, "web1", "sda", 0, 0, 'a'))
	mustPut(t, a, "sda", 1, seg(t, "web1", "sda", 1, 4096, 'b'))
	cached := filepath.Join(e.dir, server.CacheDir, "web1", "sda", hrlfmt.SegmentName(1))
	b, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	// Same bytes, but a new file: the map is not for it.
	tmp := cached + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cached); err != nil {
		t.Fatal(err)
	}
	e.store.fail.Store(false)
	e.waitApplied(a, "sda", 2)
	if n := e.store.mappedCalls(); n != 0 {
		t.Errorf("%d applies from a map, want 0 (segment 0's map was used by the failed try, segment 1's file was replaced)", n)
	}
	for seq := range uint64(2) {
		if n := e.store.calls("web1", "sda", seq); n != 1 {
			t.Errorf("segment %d applied %d times", seq, n)
		}
	}
	// The next segment takes the hot path again.
	mustPut(t, a, "sda", 2, seg(t, "web1", "sda", 2, 8192, 'c'))
	e.waitApplied(a, "sda", 3)
	if n := e.store.mappedCalls(); n != 1 {
		t.Errorf("%d applies from a map, want 1", n)
	}
}
