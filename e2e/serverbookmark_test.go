//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestBookmarkThroughServer: 'lifeboat bookmark' on the server host asks
// the real agent for a point through the configuration server; the
// point it answers is listed and holds what was written before it.
func TestBookmarkThroughServer(t *testing.T) {
	requireE2E(t)
	loop := testenv.NewLoop(t, 16*mib)
	srv := startServer(t)
	ag := startAgent(t, srv, "bm-host", []string{loop.Path})
	ag.bookmark() // initial sync done

	data := bytes.Repeat([]byte("asked through the server "), 4096/25+1)[:4096]
	f, err := os.OpenFile(loop.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(data, 1*mib)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := srv.lifeboat("bookmark", "bm-host", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res api.BookmarkResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bookmark --json: %v: %q", err, out)
	}
	if !res.OK || !res.Listed || res.Point == nil || res.Point.Kind != "crash" || res.Picked == nil || res.Machine != "bm-host" {
		t.Fatalf("bookmark: %s", out)
	}
	img := srv.failover("bm-host", res.Point.ID, filepath.Base(loop.Path))
	got := make([]byte, len(data))
	g, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.ReadAt(got, 1*mib); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("point %s lacks what was written before the bookmark (%v)", res.Point.ID, err)
	}
	t.Logf("point %s: asked %s, picked up %s, reported %s", res.Point.ID, res.Asked.Format("15:04:05.000"), res.Picked.Format("15:04:05.000"), res.Done.Format("15:04:05.000"))
}
