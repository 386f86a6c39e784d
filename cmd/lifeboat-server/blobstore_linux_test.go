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

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/blobrig"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestReplicateToBlobStore: a server whose target storage is a real
// Azurite receives an ext4 disk from an agent, lists its point, and a
// test failover materializes from the blobs an image byte-identical to
// the source; the replica page blob, downloaded, is a VHD qemu-img reads
// with the disk's data.
func TestReplicateToBlobStore(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.ext4", "qemu-img")
	az := blobrig.Start(t)
	ctx := context.Background()
	cc := az.Container(t, "drsite")
	bs, err := openBlobStore(ctx, "azblob://devstoreaccount1/drsite", az.Endpoint, az.KeyFile, "ps1", func(string) string { return "" }, false)
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
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}

	srv := blobrig.Serve(t, bs, size, nil)
	servertest.ReplicateImage(t, srv.Agent, "sda", img, 0, 1, servertest.Cut("p1"))
	srv.WaitListed(t, "p1")
	out := t.TempDir()
	res, err := servertest.Admin(t, srv.Server, srv.Dir).Failover(ctx, "web1", api.FailoverRequest{Point: "p1", Test: true, Out: out})
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
	blobrig.CheckVHD(t, cc, "machines/web1/disks/sda/replica.vhd", want, "the disk's")
}
