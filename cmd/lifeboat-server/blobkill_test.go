package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// startBlobProcess is startProcess with target storage in Azurite.
func startBlobProcess(t *testing.T, dir string, az *azuritetest.Azurite, creds string) (*exec.Cmd, statefile.State) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--metrics", "",
		"--store", "azblob://devstoreaccount1/kill", "--store-endpoint", az.Endpoint, "--store-credentials", creds)
	cmd.Env = append(os.Environ(), "LIFEBOAT_TEST_MAIN=1")
	logPath := filepath.Join(t.TempDir(), "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var st statefile.State
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err = statefile.Read(dir)
		if err == nil && st.PID == cmd.Process.Pid {
			return cmd, st
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the server did not start within 90 s; its log:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9BlobStore: the server is killed with SIGKILL while it applies
// to Azurite, and once Azurite too is killed and restarted on its data
// directory: nothing acknowledged is lost and the replica converges to
// exactly what the segments make.
func TestKill9BlobStore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	az := azuritetest.StartAt(t, t.TempDir(), 0)
	key, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.Endpoint+"/kill", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(creds, []byte(azuritetest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := servertest.Init(t)
	segDir := t.TempDir()
	var agent *servertest.Agent
	var maxAcked int64 = -1
	for round := range 4 {
		cmd, st := startBlobProcess(t, dir, az, creds)
		if agent == nil {
			agent = registerWith(t, st, dir)
		}
		p, err := client.NewProcess(st.Process, agent.Cert, agent.CAPEM)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		ds, err := p.DiskState(ctx, "sda")
		if err != nil {
			t.Fatalf("round %d: state: %v", round, err)
		}
		if int64(ds.NextSeq) <= maxAcked {
			t.Fatalf("round %d: next_seq %d after segment %d was acknowledged", round, ds.NextSeq, maxAcked)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := ds.NextSeq; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				path := filepath.Join(segDir, fmt.Sprintf("%d.hrl", seq))
				if _, err := os.Stat(path); err != nil {
					os.Rename(killSegment(t, t.TempDir(), seq), path)
				}
				ack, err := p.PutSegmentFile(ctx, "sda", seq, path)
				if err != nil {
					return // the server died
				}
				if ack.Acked != seq {
					t.Errorf("ack %+v for %d", ack, seq)
					return
				}
				maxAcked = max(maxAcked, int64(seq))
			}
		}()
		time.Sleep(time.Duration(400+200*round) * time.Millisecond)
		if round == 1 {
			az.Stop() // the store goes away under the applier, data kept
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
		cancel()
		p.CloseIdleConnections()
		if round == 1 {
			az.Restart(t)
		}
		t.Logf("round %d: resumed at %d, last acknowledged %d", round, ds.NextSeq, maxAcked)
	}
	if maxAcked < 10 {
		t.Fatalf("only %d segments acknowledged: the test did not exercise much", maxAcked+1)
	}
	cmd, st := startBlobProcess(t, dir, az, creds)
	p, err := client.NewProcess(st.Process, agent.Cert, agent.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var ds api.DiskState
	deadline := time.Now().Add(80 * time.Second)
	for {
		ds, err = p.DiskState(ctx, "sda")
		if err == nil && ds.Applied && ds.AppliedSeq+1 == ds.NextSeq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every durable segment applied: %+v %v", ds, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if int64(ds.NextSeq) <= maxAcked {
		t.Fatalf("next_seq %d, but %d was acknowledged", ds.NextSeq, maxAcked)
	}
	var img [64][]byte
	for seq := range ds.NextSeq {
		img[seq%64] = bytes.Repeat([]byte{byte(seq*7 + 1)}, 4096)
	}
	hs, err := p.Hashes(ctx, "sda", 0, 64*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		want := sha256.Sum256(make([]byte, 4096))
		if img[i] != nil {
			want = sha256.Sum256(img[i])
		}
		if h != want {
			t.Errorf("block %d of the replica differs", i)
		}
	}
	for seq := uint64(4); seq < ds.NextSeq; seq += 5 {
		ps, err := p.Point(ctx, fmt.Sprintf("p%d", seq))
		if err != nil || !ps.Durable || !ps.Listed {
			t.Errorf("point p%d: %+v, %v", seq, ps, err)
		}
	}
	t.Logf("%d segments acknowledged, all applied to the blob store", ds.NextSeq)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}
