//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailoverToBlob: a server whose target storage is a real Azurite
// container; retention folds the older point into the base page blob;
// 'lifeboat failover --to-blob' of the newer point prints the URL of a
// new page blob in another container which, downloaded, qemu-img reads as
// a VHD of the disk's size whose data is the --out image of the same
// point. A second one is refused (never overwritten) with a remedy. The
// account key appears in no output, error, API answer or log line.
func TestFailoverToBlob(t *testing.T) {
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-img not found (scripts/install-deps.sh installs qemu-utils)")
		}
		t.Skip("qemu-img not installed")
	}
	az := azuritetest.Start(t)
	ctx := context.Background()
	creds := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(creds, []byte(azuritetest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	loc, err := azblob.ParseURL("azblob://devstoreaccount1/drsite", az.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.LoadCredential(loc.Account, creds, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	bs, err := azblob.Open(ctx, loc, cred, azblob.Options{Owner: "ps1", CreateContainer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	// The failover container, made as an operator would.
	key, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.Endpoint+"/failover", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	cfg.Store = bs
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	const size = 8<<20 + 512*3 // not a whole MiB: the VHD rounds it up
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: size}}); err != nil {
		t.Fatal(err)
	}
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
	servertest.WaitFor(t, "point listed", func() bool {
		ps, err := a.Process.Point(ctx, "p1")
		return err == nil && ps.Listed
	})
	env := map[string]string{"LIFEBOAT_DATA": dir}
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
	vhd := filepath.Join(t.TempDir(), "sda.vhd")
	f, err := os.Create(vhd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlobClient("web1/p1/sda.vhd").DownloadFile(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := exec.Command(qemu, "info", "-f", "vpc", "--output=json", vhd).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, info)
	}
	var qi struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(info, &qi); err != nil || qi.VirtualSize != azblob.VirtualSize(size) {
		t.Fatalf("qemu-img info: virtual size %d (%v), want %d: %s", qi.VirtualSize, err, azblob.VirtualSize(size), info)
	}
	raw := filepath.Join(t.TempDir(), "raw")
	if o, err := exec.Command(qemu, "convert", "-f", "vpc", "-O", "raw", vhd, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, o)
	}
	rb, _ := os.ReadFile(raw)
	if int64(len(rb)) != azblob.VirtualSize(size) || !bytes.Equal(rb[:size], img) || !bytes.Equal(rb[size:], make([]byte, len(rb)-size)) {
		t.Fatal("the --to-blob VHD's data is not the --out image of the same point")
	}

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
