package server_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// The blob store gives the digests of applied segments, as the file store
// does: a process server without them in its digest log asks it.
var _ process.SegmentSummer = (*azblob.Store)(nil)

// openBlob opens the blob store in container of az as owner (a process
// server's name), closed at the end of the test.
func openBlob(t *testing.T, az *azuritetest.Azurite, container, owner string) *azblob.Store {
	t.Helper()
	loc, err := azblob.ParseURL(azblob.Scheme+azuritetest.Account+"/"+container, az.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.LoadCredential(azuritetest.Account, "", func(k string) string {
		if k == azblob.EnvKey {
			return azuritetest.Key
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := azblob.Open(ctx, loc, cred, azblob.Options{Owner: owner, LeaseDuration: 15 * time.Second, CreateContainer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blobScale is a configuration server (every role, id ps1) and a joined
// process server (ps2) sharing one container of an Azurite, with machine
// m1 (disk sda) on ps1, its segments 0 and 1 applied, then moved to ps2.
type blobScale struct {
	*scaleEnv
	storeA, storeB *azblob.Store
	cfgB           server.Config
	m1             *servertest.Agent
	s0, s1         string
}

func newBlobScale(t *testing.T) *blobScale {
	az := azuritetest.Start(t)
	e := &scaleEnv{t: t, dirA: servertest.Init(t), dirB: filepath.Join(t.TempDir(), "ps2")}
	bs := &blobScale{scaleEnv: e, storeA: openBlob(t, az, "lifeboat", "ps1"), storeB: openBlob(t, az, "lifeboat", "ps2")}
	cfgA := servertest.Config(t, e.dirA)
	cfgA.Name, cfgA.HeartbeatTimeout, cfgA.Store = "ps1", 3*time.Second, bs.storeA
	e.a = servertest.Start(t, cfgA)
	e.admin = servertest.Admin(t, e.a, e.dirA)
	var err error
	if e.passphrase, err = pki.ReadPassphrase(e.dirA); err != nil {
		t.Fatal(err)
	}
	if err := e.join("ps2", e.passphrase); err != nil {
		t.Fatal(err)
	}
	bs.cfgB = servertest.Config(t, e.dirB)
	bs.cfgB.Roles, bs.cfgB.Store = server.Roles{Process: true}, bs.storeB
	e.b = servertest.Start(t, bs.cfgB)
	servertest.WaitFor(t, "ps2 healthy", func() bool { return e.server("ps2").Healthy })

	bs.m1 = servertest.Register(t, e.a, e.dirA, "m1")
	if bs.m1.Addr != e.a.ProcessAddr() {
		t.Fatalf("m1 assigned to %s, want the local role", bs.m1.Addr)
	}
	if _, err := bs.m1.Process.SetMachine(ctx(t), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	bs.s0, bs.s1 = seg(t, "m1", "sda", 0, 0, 0xa0), seg(t, "m1", "sda", 1, 4096, 0xa1, "p1")
	mustPut(t, bs.m1, "sda", 0, bs.s0)
	mustPut(t, bs.m1, "sda", 1, bs.s1)
	if _, err := e.admin.Move(ctx(t), "m1", api.MoveRequest{To: "ps2"}); err != nil {
		t.Fatalf("move: %v", err)
	}
	if d, err := bs.storeB.Disks(ctx(t), "m1"); err != nil || len(d) != 1 || !d[0].Applied || d[0].AppliedSeq != 1 {
		t.Fatalf("disks in the container after the move: %+v, %v; want segment 1 applied (the move drains)", d, err)
	}
	return bs
}

// onB waits until ps2 serves m1 and returns m1's process client of it.
func (bs *blobScale) onB() *client.Process {
	bs.t.Helper()
	p := processFor(bs.t, bs.m1, bs.b.ProcessAddr())
	servertest.WaitFor(bs.t, "ps2 serves m1", func() bool {
		st, err := p.DiskState(ctx(bs.t), "sda")
		return err == nil && st.NextSeq == 2
	})
	return p
}

// After a scale-out move between two process servers sharing a container
// (and after a restart of the one moved to, whose digest log never held
// them), a segment the agent sends again is acknowledged as a duplicate
// when it is the segment accepted, with no resync, and refused as a
// conflict when it differs: the digest is taken from the journal blob's
// metadata, as from a file store's journal (issue 18).
func TestBlobScaleOutDuplicateAfterMove(t *testing.T) {
	bs := newBlobScale(t)
	onB := bs.onB()
	other := seg(t, "m1", "sda", 1, 4096, 0xee, "p1")
	check := func(when string) {
		t.Helper()
		// The same bytes: a duplicate, for both segments.
		for seq, p := range []string{bs.s0, bs.s1} {
			ack, err := onB.PutSegmentFile(ctx(t), "sda", uint64(seq), p)
			if err != nil || !ack.Duplicate || ack.Acked != uint64(seq) {
				t.Fatalf("%s: segment %d sent again: %+v, %v; want acknowledged as a duplicate", when, seq, ack, err)
			}
		}
		// Other bytes under an applied number: a conflict, never an ack.
		ack, err := onB.PutSegmentFile(ctx(t), "sda", 1, other)
		if !errors.Is(err, api.ErrSegmentConflict) {
			t.Fatalf("%s: a different segment 1: ack %+v, err %v; want a segment conflict", when, ack, err)
		}
		if ae := wantStatus(t, err, http.StatusConflict); ae.Code != api.CodeSegmentConflict {
			t.Fatalf("%s: a different segment 1: code %q (%s), want %s", when, ae.Code, ae.Message, api.CodeSegmentConflict)
		}
	}
	check("after the move")

	// ps2 restarted: its digest log never held segments 0 and 1.
	if err := bs.b.Close(); err != nil {
		t.Fatal(err)
	}
	bs.b = servertest.Start(t, bs.cfgB)
	onB = bs.onB()
	check("after ps2 restarted")

	// And the disk goes on: the next segment is accepted.
	if ack, err := onB.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2)); err != nil || ack.Duplicate || ack.Acked != 2 {
		t.Fatalf("segment 2 after the duplicates: %+v, %v", ack, err)
	}
}

// The process server a machine moved from gives up its blob lease: the
// one it moved to applies the machine's next segment at once. Kept, the
// lease was renewed by the old server for as long as it ran, and every
// apply of the new one failed (lease held by another process server).
func TestBlobMoveReleasesLease(t *testing.T) {
	bs := newBlobScale(t)
	if bs.storeA.LeaseHeld("m1") {
		t.Error("ps1 still holds m1's blob lease after m1 moved away")
	}
	onB := bs.onB()
	if _, err := onB.PutSegmentFile(ctx(t), "sda", 2, seg(t, "m1", "sda", 2, 8192, 0xa2)); err != nil {
		t.Fatal(err)
	}
	// A lease ps1 kept would never lapse (renewed every 5 s): only one
	// it gave up lets ps2 apply.
	servertest.WaitFor(t, "ps2 applying segment 2 to the container", func() bool {
		d, err := bs.storeB.Disks(ctx(t), "m1")
		return err == nil && len(d) == 1 && d[0].AppliedSeq == 2
	})
	if !bs.storeB.LeaseHeld("m1") {
		t.Error("ps2 applied m1 without holding its lease")
	}
}
