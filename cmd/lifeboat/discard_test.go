package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
)

// failingStore cannot apply anything.
type failingStore struct{ store.Store }

func (failingStore) Apply(context.Context, string, string, uint64, string) error {
	return errors.New("injected apply failure")
}

// 'lifeboat machines discard' against a real server whose apply of a
// segment fails: bad arguments, a segment that is not the failing one,
// then the discard itself.
func TestCLIMachinesDiscard(t *testing.T) {
	dir := servertest.Init(t)
	l, err := store.OpenLocal(filepath.Join(dir, server.StoreDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := servertest.Config(t, dir)
	cfg.Store = failingStore{l}
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	ctx := context.Background()
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	sg := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: diskSize, Seq: 0, Gen: 1,
		Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{'a'}, 4096)}}}
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 0, sg.Build(t, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIFEBOAT_DATA": dir}
	servertest.WaitFor(t, "the apply failure listed", func() bool {
		out, _, err := run(t, env, "machines")
		return err == nil && strings.Contains(out, "lifeboat machines discard web1 sda 0")
	})
	if _, errOut, err := run(t, env, "machines", "discard", "web1", "sda"); err == nil || !strings.Contains(errOut, "sequence number") {
		t.Errorf("discard without a sequence number: %v\n%s", err, errOut)
	}
	if _, errOut, err := run(t, env, "machines", "discard", "web1", "sda", "x"); err == nil || !strings.Contains(errOut, "not a decimal integer") {
		t.Errorf("discard of segment x: %v\n%s", err, errOut)
	}
	if _, errOut, err := run(t, env, "machines", "discard", "web1", "sdz", "0"); err == nil || !strings.Contains(errOut, "holds nothing of disk sdz") {
		t.Errorf("discard on a disk never sent: %v\n%s", err, errOut)
	}
	if _, errOut, err := run(t, env, "machines", "discard", "web1", "sda", "5"); err == nil || !strings.Contains(errOut, "no segment 5") {
		t.Errorf("discard of segment 5, never sent: %v\n%s", err, errOut)
	}
	var res api.DiscardResult
	if err := json.Unmarshal([]byte(mustRun(t, env, "machines", "discard", "web1", "sda", "0", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Machine != "web1" || res.Disk != "sda" || res.Seq != 0 || res.Count != 1 || res.NextSeq != 0 {
		t.Errorf("discard --json: %+v", res)
	}
	if out := mustRun(t, env, "machines"); strings.Contains(out, "failing") {
		t.Errorf("apply failure still listed after the discard:\n%s", out)
	}
}
