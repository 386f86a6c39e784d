package azblob

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/lifeboat-dr/lifeboat/store"
)

// TestToBlobAndReaderFence, on one Azurite, with two stores on one
// container as two hosts would open it (ps1 applies and prunes, cfg
// materializes):
//   - a reader registered by cfg defers ps1's Prune: nothing folded,
//     nothing deleted, the disk named in Deferred; once it is released the
//     Prune folds; a reader that crashed (lease broken, past the grace)
//     is removed and does not block;
//   - MaterializeToBlob of a point after the fold (a base to copy) makes a
//     fixed-VHD page blob whose data is the --out image of that point,
//     copying the base on the service's side and writing only the rest;
//   - it never overwrites a blob, and refuses the store's own container
//     and a missing one with a remedy.
func TestToBlobAndReaderFence(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	loc := az.container(t, "fence")
	ps := az.open(t, loc, "ps1")
	cfg := az.open(t, loc, "cfg")
	segs := plan(rand.New(rand.NewPCG(7, 8)), 6, nil)
	dir := t.TempDir()
	for i, sg := range segs {
		if err := ps.Apply(ctx, testMachine, "sda", uint64(i), writeSeg(t, dir, "sda", uint64(i), sg)); err != nil {
			t.Fatal(err)
		}
	}
	journal := func() int {
		prefix := diskPrefix(testMachine, "sda") + journalPfx
		page, err := ps.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix}).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Segment.BlobItems)
	}
	pol := store.Retention{Window: 10 * time.Second, KeepAll: 2 * time.Second, Thin: time.Hour}
	now := t0.Add(6 * time.Second)

	// A materialization of another host reads the machine: no fold.
	// (Past the grace of a reader between creating its blob and leasing
	// it: only the lease keeps it live.)
	defer func(g time.Duration) { readerGrace = g }(readerGrace)
	readerGrace = 2 * time.Second
	h, err := cfg.holdReaders(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	res, err := ps.Prune(ctx, testMachine, pol, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged != 0 || !slices.Equal(res.Deferred, []string{"sda"}) || journal() != 12 {
		t.Fatalf("prune under a reader: %+v, %d journal blobs (want nothing merged, sda deferred, 12 blobs)", res, journal())
	}
	if _, st, _ := ps.base(ctx, testMachine, "sda"); st.exists {
		t.Fatal("prune under a reader made a base")
	}
	h.release()

	// A reader that crashed: its lease broken, older than the grace.
	h, err = cfg.holdReaders(ctx, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	close(h.stop)
	<-h.done
	lc, err := lease.NewBlobClient(h.bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to(int32(0))}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	res, err = ps.Prune(ctx, testMachine, pol, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Merged != 4 || len(res.Deferred) != 0 || journal() != 4 {
		t.Fatalf("prune after the readers: %+v, %d journal blobs (want 4 merged, 4 blobs)", res, journal())
	}
	if _, err := h.bc.GetProperties(ctx, nil); err == nil {
		t.Fatal("the crashed reader's blob is still there")
	}

	// To blob, from the base and the journal.
	out := t.TempDir()
	if _, err := cfg.Materialize(ctx, testMachine, "p5", out); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(out, "sda.img"))
	if err != nil {
		t.Fatal(err)
	}
	az.container(t, "failover")
	imgs, err := cfg.MaterializeToBlob(ctx, testMachine, "p5", "failover")
	if err != nil {
		t.Fatal(err)
	}
	size := segs[5].size
	if len(imgs) != 1 || imgs[0].Disk != "sda" || imgs[0].Size != size || !strings.HasSuffix(imgs[0].URL, "/failover/"+ToBlobName(testMachine, "p5", "sda")) {
		t.Fatalf("images: %+v", imgs)
	}
	if imgs[0].Copied <= 0 || imgs[0].Written >= size {
		t.Fatalf("copied %d bytes on the service's side, wrote %d of a %d-byte disk: want a copy and less written than the disk", imgs[0].Copied, imgs[0].Written, size)
	}
	t.Logf("base copied on the service's side: %d bytes; changed ranges written: %d bytes", imgs[0].Copied, imgs[0].Written)
	floc := loc
	floc.Container = "failover"
	fcc, err := newContainerClient(floc, az.cred, defaultRetry)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	resp, err := fcc.NewBlobClient(ToBlobName(testMachine, "p5", "sda")).DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b := got.Bytes()
	if int64(len(b)) != BlobSize(size) || !bytes.Equal(b[:size], want) || !bytes.Equal(b[size:VirtualSize(size)], make([]byte, VirtualSize(size)-size)) {
		t.Fatalf("the page blob (%d bytes) is not the image (%d bytes) in fixed-VHD layout", len(b), len(want))
	}
	if string(b[len(b)-FooterSize:][:8]) != "conectix" {
		t.Fatal("no VHD footer at the blob's end")
	}

	// Refusals, with a remedy; nothing overwritten.
	var te *ToBlobError
	if _, err := cfg.MaterializeToBlob(ctx, testMachine, "p5", "failover"); !errors.As(err, &te) || !te.Exists || te.Hint() == "" {
		t.Fatalf("again into the same container: %v", err)
	}
	if _, err := cfg.MaterializeToBlob(ctx, testMachine, "p5", "fence"); !errors.As(err, &te) || te.Hint() == "" {
		t.Fatalf("into the store's container: %v", err)
	}
	if _, err := cfg.MaterializeToBlob(ctx, testMachine, "p5", "nosuch"); !errors.As(err, &te) || !strings.Contains(te.Hint(), "create") {
		t.Fatalf("into a missing container: %v", err)
	}
	if _, err := cfg.MaterializeToBlob(ctx, testMachine, "p1", "failover"); !errors.Is(err, store.ErrPruned) {
		t.Fatalf("a dropped point: %v", err)
	}
	if n, err := ps.liveReaders(ctx, testMachine); err != nil || n != 0 {
		t.Fatalf("%d readers left (%v)", n, err)
	}
}
