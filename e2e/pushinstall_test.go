//go:build linux

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

const sshdBin = "/usr/sbin/sshd"

// requirePushInstall: root, eBPF, an OpenSSH server (Debian's
// openssh-server), dpkg, and no lifeboat-agent package installed already
// (the test installs and purges it on this machine).
func requirePushInstall(t *testing.T) {
	t.Helper()
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "ssh-keygen", "dpkg", "dpkg-deb", "mount", "useradd", "userdel")
	if _, err := os.Stat(sshdBin); err != nil {
		if testenv.InCI() {
			t.Fatalf("needs %s (apt-get install openssh-server): %v", sshdBin, err)
		}
		t.Skipf("needs %s (apt-get install openssh-server; CI=true makes this a failure)", sshdBin)
	}
}

var agentPkg struct {
	once sync.Once
	path string
	err  error
}

// agentPackage builds the agent's .deb from this tree once ('make
// package' with DIST in a temporary directory).
func agentPackage(t *testing.T) string {
	t.Helper()
	agentPkg.once.Do(func() {
		// Under binDir, which TestMain removes.
		dist := filepath.Join(binDir, "dist")
		cmd := exec.Command("./scripts/package.sh")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=0.0.0~e2e")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentPkg.err = fmt.Errorf("scripts/package.sh: %v\n%s", err, out)
			return
		}
		ms, _ := filepath.Glob(filepath.Join(dist, "lifeboat-agent_*.deb"))
		if len(ms) != 1 {
			agentPkg.err = fmt.Errorf("package.sh made %v, want one lifeboat-agent .deb", ms)
			return
		}
		agentPkg.path = ms[0]
	})
	if agentPkg.err != nil {
		t.Fatal(agentPkg.err)
	}
	return agentPkg.path
}

// sshd is an OpenSSH server of the test on a loopback port, with its own
// host key; users log in with keys from dir/authorized_keys/USER.
type sshd struct {
	t       *testing.T
	dir     string
	port    int
	hostFP  string // SHA256 fingerprint of the host key
	hostPub string // the host key's public line
	p       *proc
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	// sshd reads a user's authorized keys as that user: the directory
	// must be reachable by all, which t.TempDir's parent is not.
	dir, err := os.MkdirTemp("", "lifeboat-e2e-sshd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-e2e-host", "-f", hostKey)
	pub, _ := os.ReadFile(hostKey + ".pub")
	fp := strings.Fields(run(t, "ssh-keygen", "-l", "-E", "sha256", "-f", hostKey+".pub"))[1]
	if err := os.MkdirAll(filepath.Join(dir, "authorized_keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "sshd_config")
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s/authorized_keys/%%u
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
LogLevel VERBOSE
`, port, hostKey, filepath.Join(dir, "sshd.pid"), dir)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sshd{t: t, dir: dir, port: port, hostFP: fp, hostPub: strings.TrimSpace(string(pub))}
	s.p = newProc(t, "sshd", sshdBin, "-D", "-e", "-f", conf)
	s.p.start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if !s.p.running() || time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %d:\n%s", port, s.p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newKey makes a client key pair and returns the private key's file.
func (s *sshd) newKey(name string) string {
	f := filepath.Join(s.t.TempDir(), name)
	run(s.t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", f)
	return f
}

// authorize lets user log in with key.
func (s *sshd) authorize(user, key string) {
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys", user), pub, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// knownHosts returns a known_hosts file that holds the server's key.
func (s *sshd) knownHosts() string {
	f := filepath.Join(s.t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, s.hostPub)
	if err := os.WriteFile(f, []byte(line), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

func randName(prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// pushInstall runs lifeboat push-install against sshd and returns stdout,
// stderr and whether it succeeded.
func (s *server) pushInstall(d *sshd, args ...string) (string, string, error) {
	args = append([]string{"--data", s.data, "push-install", "--host", "127.0.0.1", "--port", strconv.Itoa(d.port)}, args...)
	cmd := exec.Command(bin("lifeboat"), args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

type pushResult struct {
	OK    bool `json:"ok"`
	Steps []struct {
		Step   string `json:"step"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
		Error  string `json:"error"`
		Kind   string `json:"kind"`
		Hint   string `json:"hint"`
	} `json:"steps"`
}

// agentProcesses lists the pids of running /usr/bin/lifeboat-agent.
func agentProcesses() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && strings.TrimSuffix(exe, " (deleted)") == "/usr/bin/lifeboat-agent" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPushInstall installs the agent package on "a host" (this machine,
// through a real sshd on loopback) with push-install, then the pushed
// agent replicates a loop device: a point becomes durable, lists, and
// fails over to the device's content. The package is purged at the end,
// leaving no agent process and no pins.
func TestPushInstall(t *testing.T) {
	requirePushInstall(t)
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "lifeboat-agent").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("lifeboat-agent is already installed on this machine (%s): this test installs and purges it; remove it first (dpkg --purge lifeboat-agent)", out)
	}
	if pids := agentProcesses(); len(pids) > 0 {
		t.Fatalf("a /usr/bin/lifeboat-agent runs already (pids %v): this test would purge it", pids)
	}
	pkg := agentPackage(t)
	loop := testenv.NewLoop(t, 64*mib)
	srv := startServer(t)
	d := startSSHD(t)
	key := d.newKey("root-key")
	d.authorize("root", key)
	kh := filepath.Join(t.TempDir(), "known_hosts") // empty: the key is accepted by fingerprint
	pins := testenv.BPFFSDir(t)
	state := t.TempDir()
	name := randName("pushed-")

	// Cleanups run last-in first-out: the purge runs before the state
	// directory, the pins and the loop device go.
	t.Cleanup(func() {
		// As on a host whose policy lets the package's scripts stop the
		// service (package_test.go).
		out, err := dpkgAllowingServices(t, "--purge", "lifeboat-agent")
		if err != nil {
			t.Errorf("dpkg --purge lifeboat-agent: %v\n%s", err, out)
		}
		os.Remove("/etc/lifeboat/registration-token")
		os.Remove("/etc/lifeboat")
		if t.Failed() {
			for _, f := range []string{"/var/log/lifeboat-agent.log", "/var/log/lifeboat-agent.err"} {
				if b, err := os.ReadFile(f); err == nil {
					if len(b) > 4000 {
						b = b[len(b)-4000:]
					}
					t.Logf("--- %s (tail):\n%s", f, b)
				}
			}
		}
		os.Remove("/var/log/lifeboat-agent.log")
		os.Remove("/var/log/lifeboat-agent.err")
		if pids := agentProcesses(); len(pids) > 0 {
			t.Errorf("lifeboat-agent still runs after the purge (pids %v): killing it", pids)
			for _, p := range pids {
				if pr, err := os.FindProcess(p); err == nil {
					pr.Kill()
				}
			}
		}
		for _, f := range []string{"/usr/bin/lifeboat-agent", "/etc/init.d/lifeboat-agent", "/etc/systemd/system/lifeboat-agent.service", "/etc/lifeboat/agent.toml"} {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("%s left after the purge", f)
			}
		}
		if ents, _ := os.ReadDir(pins); len(ents) > 0 {
			t.Errorf("tracker pins left in %s after the purge: %d entries", pins, len(ents))
		}
	})

	stdout, stderr, err := srv.pushInstall(d, "--user", "root", "--key", key, "--known-hosts", kh,
		"--accept-host-key", d.hostFP, "--package", pkg, "--disk", loop.Path, "--name", name,
		"--set", "state="+state, "--set", "pin-dir="+pins, "--set", "point-interval=2s", "--set", "group-listen=",
		"--json")
	if err != nil {
		t.Fatalf("push-install: %v\nstdout:\n%s\nstderr:\n%s\nsshd:\n%s", err, stdout, stderr, d.p.tail())
	}
	var res pushResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("push-install --json: %v\n%s", err, stdout)
	}
	want := []string{"connect", "check-root", "check-host", "check-space", "copy-package", "install-package", "issue-token", "write-config", "start-agent", "wait-registration"}
	if !res.OK || len(res.Steps) != len(want) {
		t.Fatalf("push-install --json: %s", stdout)
	}
	for i, s := range res.Steps {
		if s.Step != want[i] || !s.OK {
			t.Errorf("step %d: %+v, want %s ok", i, s, want[i])
		}
		t.Logf("step %-18s %s", s.Step, s.Detail)
	}
	cp := strings.Fields(res.Steps[4].Detail)
	if up := filepath.Dir(cp[len(cp)-1]); !strings.HasPrefix(up, "/var/tmp/lifeboat-push.") {
		t.Errorf("copy-package step %q: want the upload path", res.Steps[4].Detail)
	} else if _, err := os.Stat(up); err == nil {
		t.Errorf("the upload directory %s is left on the host", up)
	}
	if st := res.Steps[8].Detail; !strings.Contains(st, "running") && !strings.Contains(st, "started directly") {
		t.Errorf("start-agent step %q: want the service running or the agent started directly", st)
	}
	if !strings.Contains(res.Steps[0].Detail, d.hostFP) || !strings.Contains(res.Steps[0].Detail, "accepted") {
		t.Errorf("connect step %q: want the accepted fingerprint %s", res.Steps[0].Detail, d.hostFP)
	}
	if b, _ := os.ReadFile(kh); !strings.Contains(string(b), strings.Fields(d.hostPub)[1]) {
		t.Errorf("known_hosts after --accept-host-key: %q, want the host key", b)
	}
	// The token is used up: the agent removed its file, the server lists
	// no live token.
	if _, err := os.Stat("/etc/lifeboat/registration-token"); err == nil {
		t.Errorf("the registration token file is still on the host after registration")
	}
	if pids := agentProcesses(); len(pids) != 1 {
		t.Fatalf("%d lifeboat-agent processes run after push-install, want 1", len(pids))
	}

	// The pushed agent replicates: write, cut a point, see it listed and
	// fail over to it.
	run(t, "dd", "if=/dev/urandom", "of="+loop.Path, "bs=1M", "count=8", "seek=3", "oflag=direct", "status=none")
	var id string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := exec.Command("/usr/bin/agentctl", "bookmark", "--state", state, "--wait").CombinedOutput()
		if err == nil {
			id = strings.TrimSpace(string(out))
			break
		}
		if time.Now().After(deadline) {
			st, _ := exec.Command("/usr/bin/agentctl", "status", "--state", state).CombinedOutput()
			t.Fatalf("agentctl bookmark --wait: %v: %s\nstatus:\n%s", err, out, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	listed := false
	for _, p := range srv.points(name) {
		listed = listed || p.ID == id
	}
	if !listed {
		t.Fatalf("point %s of the pushed agent is not listed: %+v", id, srv.points(name))
	}
	img := srv.failover(name, id, filepath.Base(loop.Path))
	sameContent(t, loop.Path, img)
}

// TestPushInstallErrors: a wrong key, an unknown and a changed host key, a
// user without root or sudo, no space in the upload directory and a
// missing package each fail with a clear error and its remedy, and
// install nothing.
func TestPushInstallErrors(t *testing.T) {
	requirePushInstall(t)
	pkg := agentPackage(t)
	srv := startServer(t)
	d := startSSHD(t)
	key := d.newKey("root-key")
	d.authorize("root", key)
	kh := d.knownHosts()
	base := []string{"--package", pkg, "--disk", "/dev/loop-none", "--name", "err-host"}

	check := func(t *testing.T, stdout, stderr string, err error, kind string, wants ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("push-install succeeded, want a %s error\n%s", kind, stdout)
		}
		for _, w := range wants {
			if !strings.Contains(stdout+stderr, w) {
				t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
			}
		}
		if !strings.Contains(stderr, "hint: ") {
			t.Errorf("no hint in stderr:\n%s", stderr)
		}
		var res pushResult
		if jerr := json.Unmarshal([]byte(stdout), &res); jerr == nil {
			last := res.Steps[len(res.Steps)-1]
			if res.OK || last.OK || last.Kind != kind || last.Hint == "" {
				t.Errorf("--json: last step %+v, want kind %s with a hint", last, kind)
			}
		}
		if _, err := os.Stat("/usr/bin/lifeboat-agent"); err == nil {
			if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "lifeboat-agent").Output(); strings.Contains(string(out), "installed") {
				t.Errorf("the package got installed by a failed push-install")
			}
		}
	}

	t.Run("wrong key", func(t *testing.T) {
		other := d.newKey("unauthorized-key")
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", "root", "--key", other, "--known-hosts", kh, "--json"}, base...)...)
		check(t, stdout, stderr, err, "auth-failed", "authentication failed", "authorized_keys")
	})
	t.Run("not a private key", func(t *testing.T) {
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", "root", "--key", key + ".pub", "--known-hosts", kh, "--json"}, base...)...)
		check(t, stdout, stderr, err, "bad-key", "not the .pub file")
	})
	t.Run("unknown host key", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", "root", "--key", key, "--known-hosts", empty}, base...)...)
		check(t, stdout, stderr, err, "", "unknown host key", d.hostFP, "--accept-host-key "+d.hostFP, "ssh-keyscan")
		if !strings.Contains(stdout, "FAIL  connect") {
			t.Errorf("no failed connect step line:\n%s", stdout)
		}
		// A wrong fingerprint accepts nothing.
		stdout, stderr, err = srv.pushInstall(d, append([]string{"--user", "root", "--key", key, "--known-hosts", empty, "--accept-host-key", "SHA256:AAAA", "--json"}, base...)...)
		check(t, stdout, stderr, err, "unknown-host-key", "does not match", d.hostFP)
		if b, _ := os.ReadFile(empty); len(b) != 0 {
			t.Errorf("known_hosts written with a wrong --accept-host-key: %q", b)
		}
	})
	t.Run("changed host key", func(t *testing.T) {
		other := d.newKey("impostor")
		pub, _ := os.ReadFile(other + ".pub")
		f := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(f, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", d.port, pub)), 0o600)
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", "root", "--key", key, "--known-hosts", f, "--accept-host-key", d.hostFP, "--json"}, base...)...)
		check(t, stdout, stderr, err, "changed-host-key", "CHANGED", d.hostFP, "ssh-keygen -R")
	})
	t.Run("no root", func(t *testing.T) {
		user := randName("lbpush")
		run(t, "useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-p", "*", user)
		t.Cleanup(func() {
			// sshd's session process of the user may still be exiting:
			// userdel refuses (status 8) until it has.
			deadline := time.Now().Add(30 * time.Second)
			for {
				out, err := exec.Command("userdel", user).CombinedOutput()
				if err == nil {
					return
				}
				if time.Now().After(deadline) || !strings.Contains(string(out), "currently used by process") {
					t.Errorf("userdel %s: %v\n%s", user, err, out)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
		ukey := d.newKey("user-key")
		d.authorize(user, ukey)
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", user, "--key", ukey, "--known-hosts", kh, "--json"}, base...)...)
		check(t, stdout, stderr, err, "no-root", "is not root and cannot sudo without a password", "NOPASSWD")
	})
	t.Run("no space", func(t *testing.T) {
		mnt := t.TempDir()
		run(t, "mount", "-t", "tmpfs", "-o", "size=1m", "lifeboat-e2e-tiny", mnt)
		t.Cleanup(func() { exec.Command("umount", mnt).Run() })
		stdout, stderr, err := srv.pushInstall(d, append([]string{"--user", "root", "--key", key, "--known-hosts", kh, "--upload-dir", mnt, "--json"}, base...)...)
		check(t, stdout, stderr, err, "no-space", "no space on the host: "+mnt+" has", "--upload-dir")
		if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
			t.Errorf("the upload directory holds %d entries after a refused copy", len(ents))
		}
	})
	t.Run("package missing", func(t *testing.T) {
		stdout, stderr, err := srv.pushInstall(d, "--user", "root", "--key", key, "--known-hosts", kh, "--disk", "/dev/x",
			"--name", "err-host", "--package", filepath.Join(t.TempDir(), "lifeboat-agent_9_amd64.deb"), "--json")
		check(t, stdout, stderr, err, "package-missing", "make package")
	})
	// Nothing failed after a token was issued: no token is left.
	out, err := srv.lifeboat("machines", "--json")
	if err != nil || strings.Contains(out, "err-host") {
		t.Errorf("machines after failed push-installs: %v %s", err, out)
	}
}
