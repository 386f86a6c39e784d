package machines_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/machines"
)

func TestRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "machines")
	r, err := machines.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, known := r.Get("web1"); known {
		t.Fatal("unknown machine known")
	}
	if err := r.Update("web1", func(m *machines.Record) { m.Serial = "ab"; m.Disks = []api.DiskSpec{{Name: "sda", Size: 1}} }); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("no")
	if err := r.UpdateErr("web1", func(m *machines.Record) error { m.Serial = "cd"; return refused }); err != refused {
		t.Fatalf("refused update: %v", err)
	}
	r.Touch("web1", func(m *machines.Record) { m.LastSeen = time.Unix(1, 0) })
	got, known := r.Get("web1")
	if !known || got.Serial != "ab" || got.LastSeen != time.Unix(1, 0) || got.StateName() != api.StateProtected {
		t.Fatalf("record %+v", got)
	}
	got.Disks[0].Name = "changed" // a copy
	b, err := os.ReadFile(filepath.Join(dir, "web1.json"))
	if err != nil || strings.Contains(string(b), "last") || !strings.Contains(string(b), `"serial": "ab"`) {
		t.Fatalf("file %s, %v", b, err)
	}
	r2, err := machines.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, known = r2.Get("web1")
	if !known || got.Name != "web1" || got.Serial != "ab" || !got.LastSeen.IsZero() || got.Disks[0].Name != "sda" {
		t.Fatalf("reloaded %+v", got)
	}
	n := 0
	r2.Each(func(string, *machines.Record) { n++ })
	if n != 1 {
		t.Fatalf("%d records", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := machines.Open(dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("damaged record: %v", err)
	}
}
