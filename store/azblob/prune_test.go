package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/store"
)

// TestPruneMatchesLocal: the same retention policy on the local store and
// on Azurite drops the same points, folds the same segments into the base
// (deleting them from the journal) and leaves the kept points
// materializing to the same bytes, reading from the base only its
// allocated pages.
func TestPruneMatchesLocal(t *testing.T) {
	az := startAzurite(t)
	ctx := context.Background()
	bs := az.open(t, az.container(t, "prune"), "ps1")
	ls, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	segs := plan(rand.New(rand.NewPCG(7, 8)), 6, nil)
	dir := t.TempDir()
	for i, sg := range segs {
		p := writeSeg(t, dir, "sda", uint64(i), sg)
		for _, st := range []store.Store{ls, bs} {
			if err := st.Apply(ctx, testMachine, "sda", uint64(i), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	pol := store.Retention{Window: 10 * time.Second, KeepAll: 2 * time.Second, Thin: time.Hour}
	now := t0.Add(6 * time.Second)
	lr, err := ls.Prune(ctx, testMachine, pol, now)
	if err != nil {
		t.Fatal(err)
	}
	br, err := bs.Prune(ctx, testMachine, pol, now)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lr.Dropped, lr.Merged) != fmt.Sprint(br.Dropped, br.Merged) || br.Merged != 4 {
		t.Fatalf("prune: local %+v, blob %+v (want 4 merged)", lr, br)
	}
	// Again: nothing more to do.
	if br2, err := bs.Prune(ctx, testMachine, pol, now); err != nil || br2.Merged != 0 {
		t.Fatalf("second prune: %+v %v", br2, err)
	}
	lp, _ := ls.Points(ctx, testMachine)
	bp, _ := bs.Points(ctx, testMachine)
	if fmt.Sprint(lp) != fmt.Sprint(bp) {
		t.Fatalf("points: local %v, blob %v", lp, bp)
	}
	prefix := diskPrefix(testMachine, "sda") + journalPfx
	page, err := bs.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix}).NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.Segment.BlobItems); n != 4 { // segments 4, 5 and their indexes
		t.Fatalf("%d journal blobs left, want 4", n)
	}
	if _, err := bs.Materialize(ctx, testMachine, "p1", t.TempDir()); !errors.Is(err, store.ErrPruned) {
		t.Fatalf("dropped point: %v", err)
	}
	for _, id := range []string{"p4", "p5"} {
		lo, bo := t.TempDir(), t.TempDir()
		if _, err := ls.Materialize(ctx, testMachine, id, lo); err != nil {
			t.Fatal(err)
		}
		before := bs.ReadBytes()
		if _, err := bs.Materialize(ctx, testMachine, id, bo); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(filepath.Join(lo, "sda.img"))
		b, _ := os.ReadFile(filepath.Join(bo, "sda.img"))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("point %s: blob image differs from local", id)
		}
		if read := bs.ReadBytes() - before; read >= int64(len(b)) {
			t.Errorf("point %s: read %d bytes from the store for a %d-byte disk: not only the allocated pages", id, read, len(b))
		} else {
			t.Logf("point %s: %d bytes read for a %d-byte disk", id, read, len(b))
		}
	}
}
