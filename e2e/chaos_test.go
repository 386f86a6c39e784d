//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	lbagent "github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// The fault-injection suite (issue 18): each case replicates a disk under
// a verified write churn, injects one fault, and ends with a point whose
// image is byte-identical to the source, printing the time the agent
// took to be healthy again. `make chaos` runs it on its own with every
// case; the normal test run runs the lean cases (each well under a
// minute) and leaves the heavy ones (full: true) to `make chaos`
// (LIFEBOAT_CHAOS=full).

// chaosCase is one fault: inject breaks something and returns the
// function that repairs it (nil: nothing to repair).
type chaosCase struct {
	name   string
	inject func(t *testing.T, c *chaosRig) (repair func())
	// unhealthy: the fault must show in agentctl status within this
	// long (0: it need not show, e.g. an agent restart); problem, when
	// set, is the problem code it must show.
	unhealthy time.Duration
	problem   string
	// agentArgs are extra flags of the agent; rate is the churn in 4 KiB
	// writes a second (0: 100).
	agentArgs []string
	rate      int
	// quiet: the churn stops before the repair (a churn faster than the
	// catch-up would keep points from converging).
	quiet bool
	// server starts the server(s) of the case (nil: startServer).
	server func(t *testing.T) *server
	// recovered, when set, is more of the recovery: it runs once the
	// agent is healthy again, inside the time to recover, and fails
	// the test if the case did not recover. fromFault: the time to
	// recover counts from the fault (a fault with nothing to repair).
	recovered func(t *testing.T, c *chaosRig)
	fromFault bool
	// hold: the fault lasts at least this long before the repair.
	hold time.Duration
	// full: a heavy case, run only by `make chaos` (LIFEBOAT_CHAOS=full).
	full bool
}

type chaosRig struct {
	loop *testenv.LoopDevice
	srv  *server
	ag   *agent
	w    churn
}

// churn is the verified write load of a case: the ordered writer on the
// raw disk, or (make chaos) fio on an ext4 on it (chaos_fio_test.go).
type churn interface {
	// start writes about perSecond 4 KiB blocks a second until stop.
	start(perSecond int)
	// stop ends the writes, leaves the disk quiescent and returns the
	// first write error.
	stop() error
	// written is the bytes written so far (an upper bound).
	written() int64
	// verify checks the failed-over image beyond its bytes.
	verify(img string)
}

const chaosDisk = 64 * mib

func TestChaos(t *testing.T) {
	requireE2E(t)
	cases := []chaosCase{
		{name: "stopped-server", unhealthy: 100 * time.Second, inject: func(t *testing.T, c *chaosRig) func() {
			// SIGSTOP: the kernel still takes connections, nothing
			// answers (issue 18, item 2).
			c.srv.p.cmd.Process.Signal(syscall.SIGSTOP)
			t.Cleanup(func() { c.srv.p.cmd.Process.Signal(syscall.SIGCONT) })
			return func() { c.srv.p.cmd.Process.Signal(syscall.SIGCONT) }
		}},
		{name: "kill9-server", inject: func(t *testing.T, c *chaosRig) func() {
			c.srv.p.kill9()
			time.Sleep(3 * time.Second)
			return func() { c.srv.start() }
		}},
		{name: "lost-pins", inject: func(t *testing.T, c *chaosRig) func() {
			// The pins gone with the agent (a bpffs remount, a reboot):
			// the agent must find the tracking gap and resync.
			c.ag.p.kill9()
			os.Remove(filepath.Join(c.ag.state, "agent.sock"))
			pins := argAfter(c.ag.p.args, "--pin-dir")
			ents, _ := os.ReadDir(pins)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(pins, e.Name()))
			}
			return func() {
				c.ag.p.start()
				c.ag.waitAPI()
				if !strings.Contains(c.ag.p.tail(), "tracking gap: resyncing") {
					t.Errorf("the agent did not resync after losing its pins:\n%s", c.ag.p.tail())
				}
			}
		}},
		{name: "outage-past-spool", unhealthy: 2 * time.Minute, problem: lbagent.ProblemSpoolFull,
			// More than one 16 MiB segment: a spool smaller than a
			// segment never catches up (the open segment fills it).
			agentArgs: []string{"--spool-bytes", "20971520"}, rate: 2000, quiet: true,
			inject: func(t *testing.T, c *chaosRig) func() {
				// The server down for longer than the agent's spool
				// holds: the agent keeps only the dirty set.
				c.srv.p.kill9()
				return func() { c.srv.start() }
			}},
		{name: "kill9-agent", inject: func(t *testing.T, c *chaosRig) func() {
			c.ag.p.kill9()
			os.Remove(filepath.Join(c.ag.state, "agent.sock"))
			time.Sleep(time.Second)
			return func() { c.ag.p.start(); c.ag.waitAPI() }
		}},
	}
	cases = append(cases, chaosCacheFull(), chaosScaleOutMove())
	full := os.Getenv("LIFEBOAT_CHAOS") == "full"
	for _, cc := range cases {
		if cc.full && !full {
			t.Logf("%s: a heavy case, run by make chaos (LIFEBOAT_CHAOS=full)", cc.name)
			continue
		}
		t.Run(cc.name, func(t *testing.T) { runChaos(t, cc, false) })
	}
	if !full {
		t.Log("the cases under fio churn: run by make chaos (LIFEBOAT_CHAOS=full)")
		return
	}
	// Every case again under fio with verification on ext4.
	t.Run("fio", func(t *testing.T) {
		for _, cc := range cases {
			t.Run(cc.name, func(t *testing.T) { runChaos(t, cc, true) })
		}
	})
}

// runChaos runs a case; withFio: under fio on ext4 rather than the
// ordered writer on the raw disk.
func runChaos(t *testing.T, cc chaosCase, withFio bool) {
	c := &chaosRig{loop: testenv.NewLoop(t, chaosDisk)}
	if withFio {
		run(t, "mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", c.loop.Path)
	}
	if cc.server != nil {
		c.srv = cc.server(t)
	} else {
		c.srv = startServer(t)
	}
	c.ag = startAgent(t, c.srv, "chaos-"+cc.name, []string{c.loop.Path}, append([]string{"--point-interval", "2s", "--group-listen", ""}, cc.agentArgs...)...)
	c.ag.waitStatus("protected", 2*time.Minute, func(st lbagent.Status, _ int) bool {
		return len(st.Disks) == 1 && st.Disks[0].State == lbagent.StateProtected
	})
	if withFio {
		c.w = newFioChurn(t, c.loop.Path)
	} else {
		c.w = newSeqWriter(t, c.loop.Path, chaosDisk)
	}
	rate := cc.rate
	if rate == 0 {
		rate = 100
	}
	c.w.start(rate)
	time.Sleep(2 * time.Second)

	faultAt := time.Now()
	repair := cc.inject(t, c)
	if cc.unhealthy > 0 {
		st, code := c.ag.waitStatus("the fault in agentctl status", cc.unhealthy, func(st lbagent.Status, code int) bool {
			return code != 0 && !st.Healthy && len(st.Problems) > 0 && (cc.problem == "" || problem(st, cc.problem) != nil)
		})
		t.Logf("%s: unhealthy after %s: %s: %s (remedy: %s)", cc.name, time.Since(faultAt).Round(100*time.Millisecond),
			st.Problems[0].Code, st.Problems[0].What, st.Problems[0].Remedy)
		_ = code
	} else if !cc.fromFault {
		time.Sleep(3 * time.Second)
	}
	time.Sleep(time.Until(faultAt.Add(cc.hold)))
	if cc.quiet {
		if err := c.w.stop(); err != nil {
			t.Fatal(err)
		}
	}
	repairAt := time.Now()
	if repair != nil {
		repair()
	}
	// Recovered: healthy and every sealed segment acknowledged.
	c.ag.waitStatus("healthy again", 3*time.Minute, func(st lbagent.Status, code int) bool {
		return code == 0 && st.Healthy && len(st.Disks) == 1 && st.Disks[0].State == lbagent.StateProtected &&
			st.Disks[0].Spool.LastError == ""
	})
	if cc.recovered != nil {
		cc.recovered(t, c)
	}
	stopAt := time.Now()
	if err := c.w.stop(); err != nil {
		t.Fatal(err)
	}
	// The churn's stop (fio finishing its job, the unmount) is not
	// part of the time to recover.
	stopped := time.Since(stopAt)
	id := c.ag.bookmark()
	recovered := time.Since(repairAt) - stopped
	if cc.fromFault {
		recovered = time.Since(faultAt) - stopped
	}
	img := c.srv.failover(c.ag.name, id, filepath.Base(c.loop.Path))
	sameContent(t, c.loop.Path, img)
	c.w.verify(img)
	label := cc.name
	if withFio {
		label = "fio/" + cc.name
	}
	t.Logf("CHAOS %s: recovered in %s (to a listed point byte-identical to the source)", label, recovered.Round(100*time.Millisecond))
}

// argAfter returns the argument after flag in args, or "".
func argAfter(args []string, flag string) string {
	for i := range len(args) - 1 {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}
