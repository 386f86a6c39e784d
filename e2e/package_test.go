//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// The packages are built once per test run, by the same script as
// 'make package', into a temporary directory.
var (
	pkgOnce sync.Once
	pkgDir  string
	pkgErr  error
)

const (
	pkgV1 = "1.0.0~test1"
	pkgV2 = "1.0.0~test2"
)

func buildPackages(t *testing.T, dir, version string) {
	t.Helper()
	cmd := exec.Command("../scripts/package.sh")
	cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh (make package) VERSION=%s: %v\n%s", version, err, out)
	}
}

// packages returns the directory holding the v1 packages.
func packages(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "go", "git")
	pkgOnce.Do(func() {
		pkgDir, pkgErr = os.MkdirTemp("", "lifeboat-e2e-pkg")
		if pkgErr != nil {
			return
		}
		cmd := exec.Command("../scripts/package.sh")
		cmd.Env = append(os.Environ(), "VERSION="+pkgV1, "DIST="+pkgDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			pkgErr = fmt.Errorf("scripts/package.sh (make package): %v\n%s", err, out)
		}
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgDir
}

// TestPackageLintian builds the packages as 'make package' does and
// checks the .debs with lintian (no errors) and their contents.
func TestPackageLintian(t *testing.T) {
	testenv.RequireCommand(t, "lintian", "dpkg-deb")
	dir := packages(t)
	arch := strings.TrimSpace(run(t, "go", "env", "GOARCH"))
	var debs []string
	for _, p := range []string{"agent", "server"} {
		deb := filepath.Join(dir, fmt.Sprintf("lifeboat-%s_%s_%s.deb", p, pkgV1, arch))
		if _, err := os.Stat(deb); err != nil {
			t.Fatalf("the package is not where docs/agent.md says: %v", err)
		}
		rpms, _ := filepath.Glob(filepath.Join(dir, "lifeboat-"+p+"-*.rpm"))
		if len(rpms) != 1 {
			t.Errorf("want one rpm of lifeboat-%s, found %v", p, rpms)
		}
		debs = append(debs, deb)
	}
	out, err := exec.Command("lintian", append([]string{"--allow-root", "--fail-on", "error"}, debs...)...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("\nE: ")) || bytes.HasPrefix(out, []byte("E: ")) {
		t.Fatalf("lintian: %v\n%s", err, out)
	}
	t.Logf("lintian:\n%s", out)
	contents := run(t, "dpkg-deb", "--contents", debs[0])
	for _, f := range []string{"./usr/bin/lifeboat-agent", "./usr/bin/agentctl", "./etc/lifeboat/agent.toml",
		"./etc/lifeboat/scripts.d/10-postgresql", "./etc/lifeboat/scripts.d/20-mysql", "./usr/share/man/man8/lifeboat-agent.8.gz",
		"./usr/share/man/man8/lifeboat-agent-run.8.gz", "./usr/share/man/man8/agentctl-status.8.gz", "./usr/share/doc/lifeboat-agent/cli.md",
		"./usr/share/bash-completion/completions/lifeboat-agent", "./usr/share/bash-completion/completions/agentctl",
		"./usr/share/zsh/vendor-completions/_lifeboat-agent", "./usr/share/fish/vendor_completions.d/agentctl.fish"} {
		if !strings.Contains(contents, f+"\n") && !strings.Contains(contents, f+" ") {
			t.Errorf("lifeboat-agent.deb lacks %s", f)
		}
	}
	conffiles := run(t, "dpkg-deb", "--info", debs[0], "conffiles")
	if !strings.Contains(conffiles, "/etc/lifeboat/agent.toml") {
		t.Errorf("agent.toml is not a conffile: %q", conffiles)
	}
}

// pinnedIDs returns the kernel ids of the links (with their programs) and
// maps pinned in dir.
func pinnedIDs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if l, err := link.LoadPinnedLink(p, nil); err == nil {
			info, err := l.Info()
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, fmt.Sprintf("%s: link %d prog %d", e.Name(), info.ID, info.Program))
			continue
		}
		if m, err := ebpf.LoadPinnedMap(p, nil); err == nil {
			info, err := m.Info()
			m.Close()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := info.ID()
			ids = append(ids, fmt.Sprintf("%s: map %d", e.Name(), id))
		}
	}
	sort.Strings(ids)
	return ids
}

type pkgStatus struct {
	Disks []struct {
		Name         string `json:"name"`
		State        string `json:"state"`
		PendingBytes int64  `json:"pending_bytes"`
	} `json:"disks"`
}

const pkgState = "/var/lib/lifeboat/agent"

func pkgAgentStatus() (*pkgStatus, error) {
	out, err := exec.Command("/usr/bin/agentctl", "status", "--state", pkgState, "--json").Output()
	var st pkgStatus
	if jerr := json.Unmarshal(out, &st); jerr != nil || len(st.Disks) == 0 {
		return nil, fmt.Errorf("agentctl status: %v %v: %q", err, jerr, out)
	}
	return &st, nil
}

func agentPid(t *testing.T) string {
	b, err := os.ReadFile("/var/run/lifeboat-agent.pid")
	if err != nil {
		return ""
	}
	pid := strings.TrimSpace(string(b))
	if _, err := os.Stat("/proc/" + pid); err != nil {
		return ""
	}
	return pid
}

// TestPackageUpgradeKeepsTracking installs the agent's .deb on this
// machine, protects a loop device, upgrades the package while a writer
// writes, and checks that the new agent adopted the same pinned tracker
// with no resync and nothing lost; then purges it and checks that nothing
// is left.
func TestPackageUpgradeKeepsTracking(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "dpkg", "dpkg-query", "service")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "lifeboat-agent").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("lifeboat-agent is already installed on this machine (%s): this test installs and purges it; remove it first", out)
	}
	if _, err := os.Stat("/etc/lifeboat/agent.toml"); err == nil {
		t.Fatal("/etc/lifeboat/agent.toml exists without the package: move it away first")
	}
	v1 := packages(t)
	v2 := t.TempDir()
	buildPackages(t, v2, pkgV2)
	arch := strings.TrimSpace(run(t, "go", "env", "GOARCH"))
	deb := func(dir, v string) string {
		return filepath.Join(dir, fmt.Sprintf("lifeboat-agent_%s_%s.deb", v, arch))
	}

	dpkg := func(args ...string) string {
		t.Helper()
		out, err := dpkgAllowingServices(t, args...)
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return out
	}

	s := startServer(t)
	dev := testenv.NewLoop(t, 128<<20)
	pins := testenv.BPFFSDir(t)
	name := fmt.Sprintf("pkgtest-%d", os.Getpid())

	// Runs before the loop device and pins are released (cleanups run
	// last-in first-out), also when the test fails.
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "lifeboat-agent").Output(); err == nil && strings.Contains(string(out), "installed") {
			if out, err := exec.Command("dpkg", "--purge", "lifeboat-agent").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
			}
		}
		if pid := agentPid(t); pid != "" {
			exec.Command("kill", "-9", pid).Run()
		}
		for _, p := range []string{"/etc/init.d/lifeboat-agent", "/var/run/lifeboat-agent.pid", "/etc/lifeboat/agent.toml",
			"/etc/systemd/system/lifeboat-agent.service", "/var/log/lifeboat-agent.log", "/var/log/lifeboat-agent.err"} {
			os.Remove(p)
		}
		os.RemoveAll(pkgState)
		if t.Failed() {
			b, _ := os.ReadFile("/var/log/lifeboat-agent.err")
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("agent log (tail):\n%s", b)
		}
	})

	// v1: installed, registered, not started: no configuration yet.
	out := dpkg("-i", deb(v1, pkgV1))
	t.Logf("dpkg -i v1:\n%s", out)
	if !strings.Contains(out, "not started") || agentPid(t) != "" {
		t.Fatalf("an agent with no server and disks must not start:\n%s", out)
	}
	if _, err := os.Stat("/etc/init.d/lifeboat-agent"); err != nil {
		if _, err2 := os.Stat("/etc/systemd/system/lifeboat-agent.service"); err2 != nil {
			t.Fatalf("the service is not registered: %v, %v", err, err2)
		}
	}

	conf := fmt.Sprintf("server = %q\npassphrase-file = %q\ndisk = [%q]\nstate = %q\nname = %q\npin-dir = %q\npoint-interval = \"2s\"\napp-interval = \"-1s\"\n",
		s.api, filepath.Join(s.data, "passphrase"), dev.Path, pkgState, name, pins)
	if err := os.WriteFile("/etc/lifeboat/agent.toml", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "lifeboat-agent", "start")
	waitProtected := func(what string, forbid ...string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, err := pkgAgentStatus()
			if err == nil {
				d := st.Disks[0]
				for _, f := range forbid {
					if d.State == f {
						t.Fatalf("%s: the disk went through %s", what, f)
					}
				}
				if d.State == "protected" {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not protected within 3 minutes: %v %+v", what, err, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitProtected("v1")
	pid1 := agentPid(t)
	before := pinnedIDs(t, pins)
	if len(before) == 0 {
		t.Fatalf("no pins in %s", pins)
	}

	// A writer keeps writing through the upgrade.
	f, err := os.OpenFile(dev.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var writes atomic.Int64
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(7, 11))
		buf := make([]byte, 64<<10)
		for !stop.Load() {
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			off := int64(r.IntN(int(dev.Size/int64(len(buf))))) * int64(len(buf))
			if _, err := f.WriteAt(buf, off); err != nil {
				done <- err
				return
			}
			if err := f.Sync(); err != nil {
				done <- err
				return
			}
			writes.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
		done <- f.Close()
	}()
	t.Cleanup(func() { stop.Store(true) })
	time.Sleep(500 * time.Millisecond)

	// v2: the upgrade restarts the agent; the new one adopts the tracker.
	w0 := writes.Load()
	out = dpkg("-i", deb(v2, pkgV2))
	t.Logf("dpkg -i v2:\n%s", out)
	wUpgrade := writes.Load() - w0
	pid2 := agentPid(t)
	if pid2 == "" || pid2 == pid1 {
		t.Fatalf("the upgrade did not restart the agent (pid before %s, after %q)", pid1, pid2)
	}
	if v := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", "lifeboat-agent")); v != pkgV2 {
		t.Fatalf("installed version %s, want %s", v, pkgV2)
	}
	waitProtected("after the upgrade", "resync", "initial-sync")
	time.Sleep(time.Second)
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("%d writes in all, %d of them during dpkg -i v2", writes.Load(), wUpgrade)
	if wUpgrade == 0 {
		t.Fatal("nothing was written during the upgrade: the test proves nothing")
	}
	if after := pinnedIDs(t, pins); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("the pinned tracker changed across the upgrade:\nbefore %v\nafter  %v", before, after)
	}
	log, _ := os.ReadFile("/var/log/lifeboat-agent.err")
	if bytes.Contains(log, []byte("tracking gap")) {
		t.Fatalf("the agent resynced after the upgrade:\n%s", log)
	}

	// Nothing written during the upgrade is lost.
	var point string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := exec.Command("/usr/bin/agentctl", "bookmark", "--state", pkgState, "--wait").CombinedOutput()
		if err == nil {
			point = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bookmark: %v: %s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	img := s.failover(name, point, filepath.Base(dev.Path))
	sameContent(t, dev.Path, img)

	// Purge: no program, configuration, state, registration, process or pin left.
	out = dpkg("--purge", "lifeboat-agent")
	t.Logf("dpkg --purge:\n%s", out)
	var left []string
	for _, p := range []string{"/usr/bin/lifeboat-agent", "/usr/bin/agentctl", "/etc/lifeboat", pkgState,
		"/etc/init.d/lifeboat-agent", "/etc/systemd/system/lifeboat-agent.service",
		"/etc/systemd/system/multi-user.target.wants/lifeboat-agent.service", "/var/run/lifeboat-agent.pid",
		"/var/log/lifeboat-agent.log", "/var/log/lifeboat-agent.err", pins} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			left = append(left, p)
		}
	}
	for _, rc := range []string{"2", "3", "4", "5"} {
		if _, err := os.Lstat("/etc/rc" + rc + ".d/S50lifeboat-agent"); err == nil {
			left = append(left, "/etc/rc"+rc+".d/S50lifeboat-agent")
		}
	}
	if _, err := os.Stat("/proc/" + pid2); err == nil {
		left = append(left, "agent process "+pid2)
	}
	if len(left) > 0 {
		t.Fatalf("dpkg --purge left %v", left)
	}
}

// dpkgAllowingServices runs dpkg as on a host that lets packages start and
// stop services: this machine's /usr/sbin/policy-rc.d (a container's)
// forbids it, and the maintainer scripts obey it through invoke-rc.d.
// Allowed in a mount namespace of dpkg's own, so nothing else on the
// machine sees it.
func dpkgAllowingServices(t *testing.T, args ...string) (string, error) {
	script := `[ -e /usr/sbin/policy-rc.d ] && { printf '#!/bin/sh\nexit 0\n' >"$P" && chmod 755 "$P" && mount --bind "$P" /usr/sbin/policy-rc.d; }; exec dpkg "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), "P="+filepath.Join(t.TempDir(), "policy-rc.d"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
