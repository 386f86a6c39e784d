//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// need returns the path of a tool the test needs; with CI=true a missing
// one fails the test.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (scripts/install-deps.sh installs it)", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// TestReplicateToBlobStore: a server whose target storage is a real
// Azurite receives an ext4 disk from an agent, lists its point, and a
// test failover materializes from the blobs an image byte-identical to
// the source; the replica page blob, downloaded, is a VHD qemu-img reads
// with the disk's data.
func TestReplicateToBlobStore(t *testing.T) {
	mkfs, qemu := need(t, "mkfs.ext4"), need(t, "qemu-img")
	az := azuritetest.Start(t)
	ctx := context.Background()
	key, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.Endpoint+"/drsite", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(creds, []byte(azuritetest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	bs, err := openBlobStore(ctx, "azblob://devstoreaccount1/drsite", az.Endpoint, creds, "ps1", func(string) string { return "" }, false)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()

	// An ext4 filesystem with files in it, made without mounting.
	src := t.TempDir()
	for i := range 20 {
		b := make([]byte, 4096*(1+i*13))
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "sda.img")
	const size = 48<<20 + 512*3 // not a whole MiB: the VHD rounds it up
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-b", "4096", "-d", src, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}

	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	cfg.Store = bs
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: size}}); err != nil {
		t.Fatal(err)
	}
	servertest.ReplicateImage(t, a, "sda", img, 0, 1, servertest.Cut("p1"))
	servertest.WaitFor(t, "point listed", func() bool {
		ps, err := a.Process.Point(ctx, "p1")
		return err == nil && ps.Listed
	})
	out := t.TempDir()
	res, err := servertest.Admin(t, srv, dir).Failover(ctx, "web1", api.FailoverRequest{Point: "p1", Test: true, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)
	got, err := os.ReadFile(filepath.Join(out, "sda.img"))
	if err != nil || !bytes.Equal(got, want) {
		b, _ := json.Marshal(res)
		t.Fatalf("failover image differs from the source (%d bytes, %v): %s", len(got), err, b)
	}

	// The replica, as Azure would attach it: a fixed VHD.
	vhd := filepath.Join(t.TempDir(), "replica.vhd")
	f, err := os.Create(vhd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlobClient("machines/web1/disks/sda/replica.vhd").DownloadFile(ctx, f, nil); err != nil {
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
	if int64(len(rb)) != azblob.VirtualSize(size) || !bytes.Equal(rb[:size], want) || !bytes.Equal(rb[size:], make([]byte, len(rb)-size)) {
		t.Fatal("the replica VHD's data is not the disk's")
	}
}
