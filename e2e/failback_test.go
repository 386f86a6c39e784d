//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// failbackStatus is the part of 'lifeboat failback --json' the tests read.
type failbackStatus struct {
	Machine       string `json:"machine"`
	Phase         string `json:"phase"`
	Passes        int    `json:"passes"`
	ComparedBytes int64  `json:"compared_bytes"`
	DifferBytes   int64  `json:"differ_bytes"`
	SentBytes     int64  `json:"sent_bytes"`
	State         string `json:"state"`
	Frozen        []string
	Disks         []struct {
		Disk             string `json:"disk"`
		Source           string `json:"source"`
		Tracked          bool   `json:"tracked"`
		DeltaBytes       int64  `json:"delta_bytes"`
		VerifiedBytes    int64  `json:"verified_bytes"`
		VerifyFixedBytes int64  `json:"verify_fixed_bytes"`
	} `json:"disks"`
}

func parseFailback(t *testing.T, out string) failbackStatus {
	t.Helper()
	var st failbackStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("failback --json: %v: %q", err, out)
	}
	return st
}

// diffBytes counts the bytes of the 4 KiB blocks that differ between two
// devices or files of the same size.
func diffBytes(t *testing.T, a, b string) int64 {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 4096), make([]byte, 4096)
	var n int64
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		if na != nb {
			t.Fatalf("%s and %s differ in size", a, b)
		}
		if !bytes.Equal(ba[:na], bb[:nb]) {
			n += int64(na)
		}
		if ea != nil {
			return n
		}
	}
}

// failbackSetup replicates an ext4 disk (a filesystem of 64 MiB on a
// 96 MiB disk), fails it over for real and commits, stops the agent, and
// checks the refusals: the stopped agent's pinned tracker still protects
// the source disk; a file; a mounted disk. It returns the source disk
// (old content), the image and the recovered machine's disk (a loop
// device over the image).
func failbackSetup(t *testing.T, machine string) (*server, *testenv.LoopDevice, string, *testenv.LoopDevice) {
	requireE2E(t)
	src := testenv.NewLoop(t, fbSize)
	run(t, "mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", src.Path, "64M")
	srv := startServer(t)
	ag := startAgent(t, srv, machine, []string{src.Path})
	mnt := mount(t, src.Path)
	run(t, "fio", "--name=base", "--directory="+mnt, "--size=16M", "--rw=write", "--bs=64k", "--ioengine=psync", "--thread")
	run(t, "umount", mnt)
	id := ag.bookmark()
	out := t.TempDir()
	if _, err := srv.lifeboat("failover", machine, "--point", id, "--out", out); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.lifeboat("commit", machine); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(out, filepath.Base(src.Path)+".img")
	ag.p.stop()

	// The stopped agent's tracker stays pinned and still tracks the
	// source disk: failing back onto it is refused with a hint.
	_, err := srv.lifeboat("failback", machine, "--to", src.Path)
	if err == nil || !strings.Contains(err.Error(), "protected by a running Lifeboat tracker") {
		t.Fatalf("failback onto a tracked disk: want a refusal naming the tracker, got %v", err)
	}
	for i, a := range ag.p.args {
		if a == "--pin-dir" {
			if err := os.RemoveAll(ag.p.args[i+1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := srv.lifeboat("failback", machine, "--to", img); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("failback onto a file: want 'not a block device', got %v", err)
	}
	other := testenv.NewLoop(t, fbSize)
	run(t, "mkfs.ext4", "-q", other.Path)
	mount(t, other.Path)
	if _, err := srv.lifeboat("failback", machine, "--to", other.Path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("failback onto a mounted disk: want 'in use', got %v", err)
	}
	rec := testenv.NewLoop(t, 0, testenv.WithBacking(img))
	return srv, src, img, rec
}

const (
	fbSize   = 96 * mib
	fbFSSize = 64 * mib // the tail past the filesystem takes raw writes
)

// TestFailback fails a machine over, changes the recovered image (files in
// its ext4 and scattered raw 4 KiB blocks), and fails it back onto the
// source disk, which still holds the old content, while the recovered
// filesystem stays mounted and written: the compare sends between 1 and
// 1.05 times the bytes that differ, the deltas carry what is written
// during the failback; the recovered machine then stops (unmount) and the
// final cut leaves the source disk byte-identical to the image, with a
// clean ext4, and the machine failed back.
func TestFailback(t *testing.T) {
	srv, src, img, rec := failbackSetup(t, "fb-host")
	recMnt := mount(t, rec.Path, "-o", "noatime")
	run(t, "fio", "--name=changed", "--directory="+recMnt, "--size=6M", "--rw=randwrite", "--bs=4k", "--ioengine=psync", "--thread", "--randseed=9")
	// Scattered raw 4 KiB blocks past the filesystem.
	f, err := os.OpenFile(rec.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	blk := make([]byte, 4096)
	for i := 0; i < 300; i++ {
		rng.Read(blk)
		if _, err := f.WriteAt(blk, fbFSSize+rng.Int63n((fbSize-fbFSSize)/4096)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "sync")
	differ := diffBytes(t, src.Path, rec.Path)
	if differ < 300*4096 {
		t.Fatalf("only %d bytes differ: the changes did not reach the image", differ)
	}

	// Start: the compare, then deltas while the recovered machine runs.
	o, err := srv.lifeboat("failback", "fb-host", "--to", src.Path, "--interval", "200ms", "--json")
	if err != nil {
		t.Fatal(err)
	}
	st := parseFailback(t, o)
	if st.Phase != "delta" || st.State != "failing-back" || len(st.Disks) != 1 || !st.Disks[0].Tracked || st.Disks[0].Source != rec.Path {
		t.Fatalf("after the compare: %+v; want phase delta, failing-back, source %s tracked", st, rec.Path)
	}
	if st.ComparedBytes != fbSize {
		t.Errorf("compared %d bytes, the disk has %d", st.ComparedBytes, fbSize)
	}
	compareSent := st.SentBytes - st.Disks[0].DeltaBytes
	t.Logf("compare: differ (test) %d, differ (server) %d, sent by the compare %d, ratio %.4f", differ, st.DifferBytes, compareSent, float64(compareSent)/float64(differ))
	if compareSent < differ || float64(compareSent) > 1.05*float64(differ) {
		t.Errorf("compare sent %d bytes for %d that differ: want between 1 and 1.05 times", compareSent, differ)
	}
	if ms := machinesState(t, srv, "fb-host"); ms != "failing-back" {
		t.Errorf("lifeboat machines: state %q, want failing-back", ms)
	}

	// Writes during the failback, carried by delta passes.
	run(t, "fio", "--name=during", "--directory="+recMnt, "--size=8M", "--rw=randwrite", "--bs=4k", "--ioengine=psync", "--thread", "--randseed=11", "--end_fsync=1")
	deadline := time.Now().Add(60 * time.Second)
	for {
		o, err := srv.lifeboat("failback", "fb-host", "--json")
		if err != nil {
			t.Fatal(err)
		}
		if st = parseFailback(t, o); st.Disks[0].DeltaBytes >= 8*mib {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deltas sent %d bytes in 60 s; the writes during the failback were %d", st.Disks[0].DeltaBytes, 8*mib)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The recovered machine stops; its unmount writes too.
	run(t, "umount", recMnt)

	o, err = srv.lifeboat("failback", "fb-host", "--complete", "--json")
	if err != nil {
		t.Fatal(err)
	}
	st = parseFailback(t, o)
	if st.Phase != "done" || st.State != "failed-back" {
		t.Fatalf("after --complete: phase %q state %q, want done failed-back\n%s", st.Phase, st.State, o)
	}
	if st.Disks[0].VerifiedBytes != fbSize || st.Disks[0].VerifyFixedBytes != 0 {
		t.Errorf("verification: %d bytes verified, %d fixed; want %d and 0 (else the deltas missed changes)", st.Disks[0].VerifiedBytes, st.Disks[0].VerifyFixedBytes, fbSize)
	}
	sameContent(t, src.Path, img)
	if ms := machinesState(t, srv, "fb-host"); ms != "failed-back" {
		t.Errorf("lifeboat machines: state %q, want failed-back", ms)
	}
	if out, err := exec.Command("e2fsck", "-fn", src.Path).CombinedOutput(); err != nil {
		t.Errorf("e2fsck of the failed-back disk: %v\n%s", err, out)
	}
	if o, err := srv.lifeboat("failback", "fb-host", "--json"); err != nil || parseFailback(t, o).Phase != "done" {
		t.Errorf("failback status after the switch-back: %v %s", err, o)
	}
}

// TestFailbackFreezesAtFinalCut completes a failback while the recovered
// filesystem is mounted and holds written data only in its page cache:
// the final cut freezes it, which writes that data out, and the last
// delta carries it. The failed-back disk's ext4 is clean and holds the
// file as the recovered machine wrote it. (After the thaw ext4 rewrites
// its superblock on the recovered disk, so byte identity is checked by
// TestFailback, whose recovered machine stops first.)
func TestFailbackFreezesAtFinalCut(t *testing.T) {
	srv, src, _, rec := failbackSetup(t, "fbz-host")
	recMnt := mount(t, rec.Path, "-o", "noatime")
	if _, err := srv.lifeboat("failback", "fbz-host", "--to", src.Path, "--interval", "200ms"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*mib)
	rand.New(rand.NewSource(5)).Read(data)
	if err := os.WriteFile(filepath.Join(recMnt, "unsynced"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := srv.lifeboat("failback", "fbz-host", "--complete", "--json")
	if err != nil {
		t.Fatal(err)
	}
	st := parseFailback(t, o)
	if st.Phase != "done" || len(st.Frozen) != 1 || st.Frozen[0] != recMnt {
		t.Fatalf("after --complete: phase %q frozen %v; want done and [%s]\n%s", st.Phase, st.Frozen, recMnt, o)
	}
	if st.Disks[0].VerifyFixedBytes != 0 {
		t.Errorf("verification fixed %d bytes: the final delta missed changes", st.Disks[0].VerifyFixedBytes)
	}
	t.Logf("4 KiB blocks that differ after the thaw: %d bytes", diffBytes(t, src.Path, rec.Path))
	if out, err := exec.Command("e2fsck", "-fn", src.Path).CombinedOutput(); err != nil {
		t.Errorf("e2fsck of the failed-back disk: %v\n%s", err, out)
	}
	back := mount(t, src.Path, "-o", "ro,noload")
	got, err := os.ReadFile(filepath.Join(back, "unsynced"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the file written before the final cut is not on the failed-back disk intact (err %v, %d bytes)", err, len(got))
	}
}

// machinesState returns the state 'lifeboat machines --json' shows.
func machinesState(t *testing.T, s *server, name string) string {
	t.Helper()
	out, err := s.lifeboat("machines", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ms []struct{ Name, State string }
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("machines --json: %v", err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m.State
		}
	}
	t.Fatalf("machine %s not listed", name)
	return ""
}
