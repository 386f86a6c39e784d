package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// A segment forged with the machine's key for the disk's next sequence
// number, sent before the agent's own, must not make the agent's segment
// look acknowledged: the agent's is answered as a conflict, also after a
// restart of the server, while a true duplicate is still acknowledged
// (issue 18, item 1).
func TestForgedSegmentConflicts(t *testing.T) {
	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	s := servertest.Start(t, cfg)
	a := servertest.Register(t, s, dir, "web1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	build := func(seq uint64, fill byte) string {
		tmp := t.TempDir()
		data := make([]byte, 4096)
		for i := range data {
			data[i] = fill
		}
		return servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: 1 << 20, Seq: seq, Gen: 1,
			Writes: []servertest.Write{{Off: 0, Data: data}}}.Build(t, tmp)
	}
	forged := build(0, 'F')
	if _, err := a.Process.PutSegmentFile(ctx, "sda", 0, forged); err != nil {
		t.Fatalf("forged segment: %v", err)
	}
	own := build(0, 'A')
	ack, err := a.Process.PutSegmentFile(ctx, "sda", 0, own)
	if !errors.Is(err, api.ErrSegmentConflict) {
		t.Fatalf("the agent's own segment 0 after a forged one: ack %+v, err %v; want a segment conflict", ack, err)
	}
	var ae *api.StatusError
	if !errors.As(err, &ae) || ae.Code != api.CodeSegmentConflict || ae.Remedy == "" {
		t.Errorf("conflict answer %+v", ae)
	}
	if ack, err := a.Process.PutSegmentFile(ctx, "sda", 0, forged); err != nil || !ack.Duplicate {
		t.Errorf("a true duplicate: %+v, %v", ack, err)
	}
	adm := servertest.Admin(t, s, dir)
	servertest.WaitFor(t, "the segment-conflict alert", func() bool {
		as, err := adm.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range as.Active {
			if al.Alert == api.AlertSegmentConflict && al.Machine == "web1" && al.Disk == "sda" && strings.Contains(al.Message, "segment 0 ") {
				return true
			}
		}
		return false
	})

	// The digest survives a restart.
	s.Close()
	s2 := servertest.Start(t, cfg)
	p, err := client.NewProcess(s2.ProcessAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	if _, err := p.PutSegmentFile(ctx, "sda", 0, own); !errors.Is(err, api.ErrSegmentConflict) {
		t.Errorf("after a restart: %v, want a segment conflict", err)
	}
	if ack, err := p.PutSegmentFile(ctx, "sda", 0, forged); err != nil || !ack.Duplicate {
		t.Errorf("a true duplicate after a restart: %+v, %v", ack, err)
	}
}
