//go:build integration

package windows

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

// TestWindowsHost runs the tracker on a real Windows host, as an
// administrator, against a scratch disk that holds one NTFS volume:
//
//	$env:LIFEBOAT_TEST_DISK = '\\.\PhysicalDrive1'   # the scratch disk
//	$env:LIFEBOAT_TEST_DIR  = 'E:\'                   # a directory on its volume
//	go test -tags integration -run TestWindowsHost -v ./windows/
//
// It does not run in this project's CI (there is no Windows host there).
// It writes a file between two cuts and checks that the cut reports the
// file's clusters (their disk offsets from FSCTL_GET_RETRIEVAL_POINTERS on
// the live file, plus the partition offset) and that the tracker reads the
// file's bytes there from the snapshot.
func TestWindowsHost(t *testing.T) {
	disk, dir := os.Getenv("LIFEBOAT_TEST_DISK"), os.Getenv("LIFEBOAT_TEST_DIR")
	if disk == "" || dir == "" {
		t.Skip("set LIFEBOAT_TEST_DISK and LIFEBOAT_TEST_DIR (see the comment of TestWindowsHost)")
	}
	sys := Windows{}
	vols, err := sys.Volumes(disk)
	if err != nil || len(vols) == 0 {
		t.Fatalf("volumes of %s: %v %v", disk, vols, err)
	}
	tr, err := Open(sys, Options{StateFile: filepath.Join(t.TempDir(), "tracker.state")})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Protect(disk); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	drain := func() []tracker.Event {
		var evs []tracker.Event
		for {
			b := <-tr.Events()
			evs = append(evs, b...)
			if b[len(b)-1].Kind == tracker.EventCut {
				return evs
			}
		}
	}
	if _, err := tr.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	drain()

	data := make([]byte, 3<<20)
	rand.Read(data)
	name := filepath.Join(dir, "lifeboat-windows-test.bin")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(name)
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := retrievalPointers(windows.Handle(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	var dirty tracker.Set
	for _, e := range drain() {
		if e.Kind == tracker.EventQueued {
			dirty.Add(e.Extent.Offset, e.Extent.Length)
		}
	}
	var vol VolumeInfo
	for _, v := range vols {
		if v.FS == "NTFS" {
			vol = v
		}
	}
	var got []byte
	for _, r := range vol.Layout.RunRanges(runs) {
		dr, _ := vol.Layout.ToDisk(r)
		if !dirty.Covers(dr.Off, dr.Len) {
			t.Fatalf("file clusters at disk offset %d+%d not reported", dr.Off, dr.Len)
		}
		b := make([]byte, dr.Len)
		if _, err := tr.ReadAt(disk, b, dr.Off, nil); err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatal("the snapshot's bytes at the file's clusters are not the file")
	}
}
