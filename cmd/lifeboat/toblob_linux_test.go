//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/blobrig"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// TestFailoverToBlob: a server whose target storage is a real Azurite
// container; retention folds the older point into the base page blob;
// 'lifeboat failover --to-blob' of the newer point prints the URL of a
// new page blob in another container which, downloaded, qemu-img reads as
// a VHD of the disk's size whose data is the --out image of the same
// point. A second one is refused (never overwritten) with a remedy. The
// account key appears in no output, error, API answer or log line.
func TestFailoverToBlob(t *testing.T) {
	testenv.RequireCommand(t, "qemu-img")
	az := blobrig.Start(t)
	ctx := context.Background()
	loc, err := azblob.ParseURL("azblob://devstoreaccount1/drsite", az.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.LoadCredential(loc.Account, az.KeyFile, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	bs, err := azblob.Open(ctx, loc, cred, azblob.Options{Owner: "ps1", CreateContainer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	cc := az.Container(t, "failover")

	var logs cmdlinetest.Buffer
	const size = 8<<20 + 512*3 // not a whole MiB: the VHD rounds it up
	srv := blobrig.Serve(t, bs, size, &logs)
	a := srv.Agent
	full := make([]byte, size)
	rand.Read(full)
	small := make([]byte, 5000)
	rand.Read(small)
	for seq, sg := range []servertest.Segment{
		{Writes: []servertest.Write{{Off: 0, Data: full[:4<<20]}, {Off: 4 << 20, Data: full[4<<20:]}}, Cuts: []hrlfmt.Cut{{Kind: hrlfmt.CutCrash, PointID: "p0", Time: time.Now().Add(-30 * time.Hour)}}},
		{Writes: []servertest.Write{{Off: 3*4096 + 100, Data: small}, {Off: size - 700, Data: small[:700]}}, Cuts: []hrlfmt.Cut{{Kind: hrlfmt.CutCrash, PointID: "p1", Time: time.Now()}}},
	} {
		sg.Machine, sg.Disk, sg.DiskSize, sg.Seq, sg.Gen = "web1", "sda", size, uint64(seq), uint64(seq+1)
		if _, err := a.Process.PutSegmentFile(ctx, "sda", uint64(seq), sg.Build(t, t.TempDir())); err != nil {
			t.Fatal(err)
		}
	}
	srv.WaitListed(t, "p1")
	env := map[string]string{"LIFEBOAT_DATA": srv.Dir}
	var outputs []string
	runOK := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(t, env, args...)
		outputs = append(outputs, out, errOut)
		if err != nil {
			t.Fatalf("lifeboat %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	// Retention (default policy): p0, 30 h old, is dropped and its
	// segment folded into the base page blob.
	var pr api.PruneAnswer
	if err := json.Unmarshal([]byte(runOK("prune", "web1", "--json")), &pr); err != nil || pr.Result.MergedSegments != 1 {
		t.Fatalf("prune: %+v %v", pr, err)
	}

	out := t.TempDir()
	runOK("failover", "web1", "--point", "p1", "--test", "--out", out)
	img, err := os.ReadFile(filepath.Join(out, "sda.img"))
	if err != nil || len(img) != size {
		t.Fatalf("--out image: %d bytes, %v", len(img), err)
	}
	text := runOK("failover", "web1", "--point", "latest", "--test", "--to-blob", "failover")
	url := az.Endpoint + "/failover/web1/p1/sda.vhd"
	if !strings.Contains(text, "test failover of web1 at point p1") || !strings.Contains(text, url) {
		t.Fatalf("failover --to-blob printed no %s:\n%s", url, text)
	}

	// What Azure would make a managed disk of: a fixed VHD of the disk.
	blobrig.CheckVHD(t, cc, "web1/p1/sda.vhd", img, "the --out image of the same point")

	// Never overwritten; a remedy.
	o, errOut, err := run(t, env, "failover", "web1", "--point", "p1", "--to-blob", "failover")
	outputs = append(outputs, o, errOut)
	if err == nil || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("second failover to the same blobs: %v\n%s", err, errOut)
	}
	o, errOut, err = run(t, env, "failover", "web1", "--point", "p1", "--to-blob", "nosuch", "--json")
	outputs = append(outputs, o, errOut)
	if err == nil || !strings.Contains(errOut, "not found") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("failover to a missing container: %v\n%s", err, errOut)
	}
	for _, s := range append(outputs, logs.String()) {
		if strings.Contains(s, azuritetest.Key) || strings.Contains(s, azuritetest.Key[:20]) {
			t.Fatalf("the account key was shown: %s", s)
		}
	}
	// The base was copied on the service's side, only the rest written.
	m := regexp.MustCompile(`failover page blobs written".*copied_bytes=(\d+) written_bytes=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no log of the failover to blob:\n%s", logs.String())
	}
	copied, _ := strconv.ParseInt(m[1], 10, 64)
	written, _ := strconv.ParseInt(m[2], 10, 64)
	if copied < size || written != 5700 {
		t.Fatalf("copied %d bytes of the base on the service's side, wrote %d: want the base copied and the 5700 bytes of p1's segment written", copied, written)
	}
	t.Logf("base copied on the service's side: %d bytes; changed ranges written: %d bytes", copied, written)
}
