//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// The churn of TestChaos under `make chaos`: fio with verification on an
// ext4 on the protected disk. fio runs one bounded job after another
// (each about two seconds of writes), rotating over fioChurnFiles files,
// so that stopping waits for the job under way and every file holds what
// one complete job wrote: fio --verify_only checks each on the image.

// fioChurnFiles is how many files the jobs rotate over.
const fioChurnFiles = 4

type fioJob struct {
	file string
	size int64
	seed int
}

// args are fio's arguments for the job on the file system at mnt.
func (j fioJob) args(mnt string) []string {
	return []string{"--name=churn", "--filename=" + filepath.Join(mnt, j.file), fmt.Sprintf("--size=%d", j.size),
		"--rw=randwrite", "--bs=4k", "--ioengine=psync", "--verify=crc32c", "--verify_state_save=0",
		fmt.Sprintf("--randseed=%d", j.seed), "--fsync=64"}
}

type fioChurn struct {
	t   *testing.T
	dev string
	mnt string

	mu     sync.Mutex
	last   map[string]fioJob // the last complete job of each file
	bytes  int64             // written by the jobs started so far
	stopFn func() error
}

func newFioChurn(t *testing.T, dev string) *fioChurn {
	return &fioChurn{t: t, dev: dev, mnt: mount(t, dev), last: map[string]fioJob{}}
}

func (f *fioChurn) start(perSecond int) {
	rate := int64(perSecond) * 4096
	// About two seconds of writes a job, 1 to 8 MiB, whole 64 KiB.
	size := min(max(2*rate, mib), 8*mib) &^ (64<<10 - 1)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			j := fioJob{file: fmt.Sprintf("churn.%d", i%fioChurnFiles), size: size, seed: 1000 + i}
			f.mu.Lock()
			f.bytes += size
			f.mu.Unlock()
			args := append(j.args(f.mnt), fmt.Sprintf("--rate=,%d", rate), "--do_verify=0")
			if out, err := exec.Command("fio", args...).CombinedOutput(); err != nil {
				done <- fmt.Errorf("fio job %d: %v\n%s", i, err, out)
				return
			}
			f.mu.Lock()
			f.last[j.file] = j
			f.mu.Unlock()
		}
	}()
	var once sync.Once
	var err error
	f.stopFn = func() error {
		once.Do(func() {
			close(stop)
			err = <-done
			// Unmounted: nothing of the file system stays in memory
			// or is written after the point.
			if out, uerr := exec.Command("umount", f.mnt).CombinedOutput(); uerr != nil && err == nil {
				err = fmt.Errorf("umount %s: %v: %s", f.mnt, uerr, out)
			}
		})
		return err
	}
	f.t.Cleanup(func() { f.stopFn() })
}

func (f *fioChurn) stop() error { return f.stopFn() }

func (f *fioChurn) written() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes
}

// verify checks the image's file system (e2fsck) and every file's last
// complete job (fio --verify_only).
func (f *fioChurn) verify(img string) {
	t := f.t
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck of the failover image: %v\n%s", err, out)
	}
	l := testenv.NewLoop(t, 0, testenv.WithBacking(img))
	mnt := mount(t, l.Path) // fio opens the files for writing, even to verify
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.last) == 0 {
		t.Fatal("no fio job completed during the case")
	}
	start := time.Now()
	for _, j := range f.last {
		if out, err := exec.Command("fio", append(j.args(mnt), "--verify_only")...).CombinedOutput(); err != nil {
			t.Fatalf("fio --verify_only of %s on the failover image: %v\n%s", j.file, err, out)
		}
	}
	t.Logf("fio verified %d files on the failover image (%s)", len(f.last), time.Since(start).Round(100*time.Millisecond))
}

// written and verify of the ordered writer: its bytes are checked by
// the comparison with the disk, nothing more.
func (w *seqWriter) written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.history)) * 4096
}

func (w *seqWriter) verify(string) {}
