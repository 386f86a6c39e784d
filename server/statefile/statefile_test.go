package statefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/statefile"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := statefile.Read(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no file: %v", err)
	}
	ref := false
	in := statefile.State{PID: 7, Roles: []string{"config"}, API: "127.0.0.1:443", APIURL: "https://127.0.0.1:443",
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), StoreReflink: &ref, StoreNote: statefile.NoReflinkNote}
	if err := statefile.Write(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := statefile.Read(dir)
	if err != nil || out.PID != 7 || out.APIURL != in.APIURL || !out.Started.Equal(in.Started) || out.StoreReflink == nil || *out.StoreReflink || out.StoreNote != in.StoreNote {
		t.Fatalf("read back %+v, %v", out, err)
	}
	if err := os.WriteFile(filepath.Join(dir, statefile.File), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := statefile.Read(dir); err == nil {
		t.Error("damaged file read")
	}
}
