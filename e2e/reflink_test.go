//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestFailoverReflinkStore runs the server with its data directory on XFS
// made with reflink=1 and fails over, into that file system, to points cut
// while an ordered writer runs and to the newest one after it stopped:
// Materialize then rewinds clones of the replica (while replication goes
// on), and every image must still be the disk after a prefix of the
// writes, the last one after all of them. server.json says the store
// shares extents.
func TestFailoverReflinkStore(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 64*mib)
	xfs := testenv.NewXFS(t, 1<<30, true)
	srv := startServerIn(t, filepath.Join(xfs, "data"))
	b, err := os.ReadFile(filepath.Join(srv.data, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		StoreReflink *bool `json:"store_reflink"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.StoreReflink == nil || !*st.StoreReflink {
		t.Fatalf("server.json on XFS with reflink: store_reflink %v (%v): %s", st.StoreReflink, err, b)
	}
	ag := startAgent(t, srv, "seq-host", []string{loop.Path}, "--point-interval", "1s")
	ag.bookmark() // initial sync done

	w := newSeqWriter(t, loop.Path, 64*mib)
	w.start(2000)
	var ids []string
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		ids = append(ids, ag.bookmark())
	}
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, ag.bookmark())
	prev := -1
	for i, id := range ids {
		out := filepath.Join(xfs, "out-"+strconv.Itoa(i))
		if _, err := srv.lifeboat("failover", "seq-host", "--point", id, "--test", "--out", out); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(out, filepath.Base(loop.Path)+".img")
		k, err := w.checkPrefix(img)
		if err != nil {
			t.Fatalf("point %d (%s): %v", i, id, err)
		}
		if k < prev {
			t.Errorf("point %d is after %d writes, an earlier point after %d", i, k, prev)
		}
		prev = k
		os.RemoveAll(out)
	}
	if total := len(w.history); prev != total {
		t.Errorf("the last point, cut with the writer stopped, holds %d of %d writes", prev, total)
	}
	t.Logf("%d writes, %d points checked on a reflink store", len(w.history), len(ids))
}
