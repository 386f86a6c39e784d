//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lbagent "github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/uploader"
)

// Cases of TestChaos that need more than one plain server: a process
// server whose cache file system fills up, and a scale-out move.

// chaosCacheSize is the size of the cache's file system in the
// cache-full case: room for the cache of a lean churn, not more.
const chaosCacheSize = "64m"

// chaosCacheFullFor is how long the cache stays full; chaosMaxRefusals
// bounds the uploads refused meanwhile: a backoff doubling from 0.1 s to
// 5 s makes 7 attempts in 10 s (a retry every 0.3–0.5 s, as before issue
// 18's fix, 20 to 30).
const (
	chaosCacheFullFor = 10 * time.Second
	chaosMaxRefusals  = 12
)

// chaosCacheFull: the process server's cache (its data directory's
// cache/) on a small tmpfs that fills up, so that uploads are refused
// with 507; while full, the agent and `lifeboat machines` show it (a
// per-machine problem and an upload-refused alert); once space is freed
// the replica converges and both clear.
func chaosCacheFull() chaosCase {
	var (
		fill          *filler
		filled, freed time.Time
	)
	return chaosCase{name: "cache-full", unhealthy: time.Minute, problem: lbagent.ProblemSegmentRefused, hold: chaosCacheFullFor,
		server: func(t *testing.T) *server {
			data := t.TempDir()
			cache := filepath.Join(data, "cache") // server.CacheDir
			if err := os.Mkdir(cache, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", cache, "tmpfs", 0, "size="+chaosCacheSize+",mode=0700"); err != nil {
				t.Fatalf("mount a tmpfs for the cache: %v", err)
			}
			t.Cleanup(func() {
				if err := syscall.Unmount(cache, 0); err != nil {
					t.Errorf("unmount the cache's tmpfs: %v", err)
					syscall.Unmount(cache, syscall.MNT_DETACH)
				}
			})
			fill = &filler{t: t, dir: cache}
			return startServerIn(t, data)
		},
		inject: func(t *testing.T, c *chaosRig) func() {
			fill.start()
			filled = time.Now()
			t.Cleanup(fill.stop)
			// The server shows the refusals per machine, with the
			// alert, before the agent's status is looked at.
			var m api.Machine
			waitFor(t, "the 507 in lifeboat machines (problem and upload-refused alert)", func() bool {
				var ok bool
				m, ok = machine(t, c.srv, c.ag.name)
				return ok && strings.Contains(strings.Join(m.Problems, "\n"), "(507 ") && alert(m, api.AlertUploadRefused) != nil
			})
			a := alert(m, api.AlertUploadRefused)
			t.Logf("cache-full: lifeboat machines shows it after %s: %s; alert %s: %s (remedy: %s)",
				time.Since(filled).Round(100*time.Millisecond), strings.Join(m.Problems, "; "), a.Alert, a.Message, a.Remedy)
			return func() {
				// Full for a while (hold): the agent kept its segments
				// and backed off (issue 18, item 6), new segments or not.
				st, _ := c.ag.fullStatus()
				if len(st.Disks) != 1 || st.Disks[0].Spool.Refused != api.SpoolRefusedCacheFull {
					t.Fatalf("agent status does not say the cache is full: %+v", st.Disks)
				}
				m, _ := machine(t, c.srv, c.ag.name)
				n := refusals(m)
				t.Logf("cache-full: full for %s: %d segments (%d bytes) queued on the agent, %d uploads refused",
					time.Since(filled).Round(100*time.Millisecond), st.Disks[0].Spool.Queued, st.Disks[0].Spool.Bytes, n)
				if st.Disks[0].Spool.Queued < 2 {
					t.Errorf("%d segments queued after %s of a full cache under churn: want a backlog", st.Disks[0].Spool.Queued, chaosCacheFullFor)
				}
				if n < 2 || n > chaosMaxRefusals {
					t.Errorf("%d uploads refused in %s: want 2 to %d (the uploader backs off up to %s)", n, chaosCacheFullFor, chaosMaxRefusals, uploader.MaxBackoff)
				}
				fill.stop()
				freed = time.Now()
			}
		},
		recovered: func(t *testing.T, c *chaosRig) {
			start := time.Now()
			waitFor(t, "the refusal and its alert cleared in lifeboat machines", func() bool {
				m, ok := machine(t, c.srv, c.ag.name)
				return ok && !strings.Contains(strings.Join(m.Problems, "\n"), "refused") && alert(m, api.AlertUploadRefused) == nil
			})
			t.Logf("cache-full: agent healthy %s after the space was freed, the refusal cleared in lifeboat machines %s later",
				start.Sub(freed).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
		},
	}
}

// chaosScaleOutMove: a configuration server and a joined process server
// share the target storage; under churn the machine is moved from the
// first to the second and replicates there without a resync. The time
// to recover counts from the move to the first segments applied by the
// new process server.
func chaosScaleOutMove() chaosCase {
	var (
		so     scaleOut
		before scaleStatus
		writes int64
		next   uint64
	)
	return chaosCase{name: "scale-out-move", full: true, fromFault: true,
		server: func(t *testing.T) *server {
			so = startScaleOut(t)
			return so.a
		},
		inject: func(t *testing.T, c *chaosRig) func() {
			if st, err := c.ag.scaleStatus(); err != nil || st.Server.Address == so.addrB {
				t.Fatalf("agent started on ps2 (%v): want ps1", err)
			}
			before, _ = c.ag.scaleStatus()
			writes = c.w.written()
			next = so.move(t, c.ag)
			return nil
		},
		recovered: func(t *testing.T, c *chaosRig) {
			so.waitMoved(t, c.ag, next)
			// No resync: the bytes journaled since the move are
			// about those written, with ext4's journal under fio (a full
			// copy is 64 MiB).
			after, _ := c.ag.scaleStatus()
			written := c.w.written() - writes
			if len(before.Disks) != 1 || len(after.Disks) != 1 {
				t.Fatal("no disk in status")
			}
			sent := after.Disks[0].SentBytes - before.Disks[0].SentBytes
			t.Logf("scale-out-move: %d bytes written, %d bytes journaled since the move", written, sent)
			if sent < 0 || sent > 2*written+8*mib {
				t.Errorf("journaled %d bytes for %d bytes of new writes: a full copy or resync went on", sent, written)
			}
		},
	}
}

// machine returns the machine name as `lifeboat machines --json` lists
// it.
func machine(t *testing.T, s *server, name string) (api.Machine, bool) {
	t.Helper()
	out, err := s.lifeboat("machines", "--json")
	if err != nil {
		return api.Machine{}, false
	}
	var ms []api.Machine
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("machines --json: %v: %q", err, out)
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return api.Machine{}, false
}

// refusals is the count of refused uploads the upload-refused alert
// gives (1 when it gives none).
func refusals(m api.Machine) int {
	a := alert(m, api.AlertUploadRefused)
	if a == nil {
		return 0
	}
	if m := refusalsRE.FindStringSubmatch(a.Message); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 1
}

var refusalsRE = regexp.MustCompile(`\((\d+) refusals since `)

func alert(m api.Machine, kind string) *api.Alert {
	for i, a := range m.Alerts {
		if a.Alert == kind {
			return &m.Alerts[i]
		}
	}
	return nil
}

// filler keeps a file system full: it writes files until the file system
// refuses (ENOSPC) and keeps topping them up as space is freed (the
// server deletes applied segments), until stopped; stop removes the
// files.
type filler struct {
	t    *testing.T
	dir  string
	once sync.Once
	quit chan struct{}
	done chan struct{}
}

func (f *filler) start() {
	f.quit, f.done = make(chan struct{}), make(chan struct{})
	f.top() // full before start returns
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.quit:
				return
			case <-time.After(100 * time.Millisecond):
				f.top()
			}
		}
	}()
}

// top writes a new file until the file system is full.
func (f *filler) top() {
	file, err := os.CreateTemp(f.dir, ".chaos-fill-")
	if err != nil {
		if !errors.Is(err, syscall.ENOSPC) {
			f.t.Errorf("fill the cache: %v", err)
		}
		return
	}
	defer file.Close()
	buf := make([]byte, 64<<10)
	var written int
	for _, n := range []int{64 << 10, 4 << 10} {
		for {
			if _, err := file.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					f.t.Errorf("fill the cache: %v", err)
				}
				break
			}
			written += n
		}
	}
	if written == 0 {
		os.Remove(file.Name()) // still full: no empty file per try
	}
}

// stop stops topping up and frees the space.
func (f *filler) stop() {
	f.once.Do(func() {
		if f.quit == nil {
			return
		}
		close(f.quit)
		<-f.done
		ents, _ := os.ReadDir(f.dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".chaos-fill-") {
				os.Remove(filepath.Join(f.dir, e.Name()))
			}
		}
	})
}
