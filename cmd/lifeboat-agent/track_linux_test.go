package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

func TestTrackRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"track"}, "give at least one --disk"},
		{[]string{"track", "--disk", "/etc/hostname"}, "not a block device"},
		{[]string{"track", "--disk", "/no/such/disk"}, "no such device"},
		{[]string{"track", "--disk", t.TempDir()}, "not a block device"},
		{[]string{"track", "--disk", "/dev/null"}, "not a block device"},
		{[]string{"bogus"}, "unknown command"},
	} {
		var out, errOut bytes.Buffer
		err := runWith(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v; want one containing %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on stdout", tc.args, out.String())
		}
	}
}

// TestTrackCommandStopsCleanly runs the real binary, writes, and stops it
// with a signal before any periodic cut: everything written must still be
// printed, in the documented JSON form.
func TestTrackCommandStopsCleanly(t *testing.T) {
	testenv.RequireBPF(t)
	bin := filepath.Join(t.TempDir(), "lifeboat-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	loop := testenv.NewLoop(t, 32<<20)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "track", "--disk", loop.Path, "--json", "--cut-interval", "1h")
			var stdout bytes.Buffer
			stderr := &cmdlinetest.Buffer{}
			cmd.Stdout, cmd.Stderr = &stdout, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stderr.String(), "tracking") {
				if time.Now().After(deadline) {
					t.Fatalf("tracker did not start: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			f, err := os.OpenFile(loop.Path, os.O_RDWR|unix.O_DIRECT, 0)
			if err != nil {
				t.Fatal(err)
			}
			buf, _ := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			defer unix.Munmap(buf)
			for i := int64(0); i < 50; i++ {
				if _, err := f.WriteAt(buf, i*1<<16); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v\n%s", err, stderr.String())
			}
			seen := map[int64]bool{}
			completed := 0
			sc := bufio.NewScanner(&stdout)
			for sc.Scan() {
				var l map[string]any
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				for _, k := range []string{"event", "offset", "length", "gen", "completed"} {
					if _, ok := l[k]; !ok {
						t.Fatalf("line %q lacks %q", sc.Text(), k)
					}
				}
				switch l["event"] {
				case "queued":
					if l["disk"] != loop.Path || l["op"] != "write" || l["length"].(float64) != 8192 {
						t.Errorf("unexpected extent %q", sc.Text())
					}
					seen[int64(l["offset"].(float64))] = true
				case "completed":
					completed++
				}
			}
			if len(seen) != 50 || completed != 50 {
				t.Fatalf("printed %d queued and %d completed writes of 50\nstderr: %s", len(seen), completed, stderr.String())
			}
			if !strings.Contains(stderr.String(), loop.Path+": ") {
				t.Errorf("no summary line on stderr: %s", stderr.String())
			}
		})
	}
}

// TestTrackSummary: --summary folds a generation's extents as the agent's
// rounds do and prints one line per disk at each cut.
func TestTrackSummary(t *testing.T) {
	testenv.RequireBPF(t)
	bin := filepath.Join(t.TempDir(), "lifeboat-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	loop := testenv.NewLoop(t, 32<<20)
	cmd := exec.Command(bin, "track", "--disk", loop.Path, "--summary", "--json", "--cut-interval", "1h")
	var stdout bytes.Buffer
	stderr := &cmdlinetest.Buffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "tracking") {
		if time.Now().After(deadline) {
			t.Fatalf("tracker did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := os.OpenFile(loop.Path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	defer unix.Munmap(buf)
	// 40 separate extents, then 10 writes that extend the first ones:
	// 50 events, 40 coalesced extents of 16 KiB.
	for i := int64(0); i < 40; i++ {
		if _, err := f.WriteAt(buf, i<<16); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(0); i < 10; i++ {
		if _, err := f.WriteAt(buf, i<<16+8192); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	var total summaryLine
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l summaryLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if l.Disk != loop.Path {
			t.Errorf("line for disk %q, want %q", l.Disk, loop.Path)
		}
		total.Events += l.Events
		total.Extents += l.Extents
		total.ChangedBytes += l.ChangedBytes
	}
	if total.Events != 50 || total.Extents != 40 || total.ChangedBytes != 30*8192+10*16384 {
		t.Fatalf("summary %+v; want 50 events, 40 extents, %d bytes\nstdout: %s", total, 30*8192+10*16384, stdout.String())
	}
}
