//go:build linux

package sysservice

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// testSpec is a service of a unique name whose program is a shell script
// that stays up until it is killed.
func testSpec(t *testing.T) (Spec, string) {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prog.toml")
	if err := os.WriteFile(cfg, []byte("# test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("lifeboat-svctest-%d", os.Getpid())
	return Spec{Name: name, DisplayName: "Lifeboat service test", Description: "Lifeboat service test",
		Config: cfg, Executable: exe, After: []string{"network-online.target"}, StopSeconds: 30}, name
}

func run(t *testing.T, spec Spec, verb string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Command(verb, args, spec, &out, &errOut)
	t.Logf("%s %s: %s%s(err %v)", spec.Name, verb, out.String(), errOut.String(), err)
	return out.String(), err
}

// leftovers lists the files of a registration of name that exist.
func leftovers(name string) []string {
	paths := []string{"/etc/systemd/system/" + name + ".service",
		"/etc/systemd/system/multi-user.target.wants/" + name + ".service",
		"/etc/init.d/" + name, "/var/run/" + name + ".pid"}
	paths = append(paths, sysvLinks(name)...)
	var found []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			found = append(found, p)
		}
	}
	return found
}

func cleanup(t *testing.T, name string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile("/var/run/" + name + ".pid"); err == nil {
			exec.Command("kill", strings.TrimSpace(string(b))).Run()
		}
		for _, p := range append(leftovers(name), "/var/log/"+name+".log", "/var/log/"+name+".err") {
			os.Remove(p)
		}
	})
}

func TestUnitVerifies(t *testing.T) {
	testenv.RequireCommand(t, "systemd-analyze")
	spec, name := testSpec(t)
	out, err := run(t, spec, "install", "--init", "systemd", "--print")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=" + spec.Executable + " run --config " + spec.Config, "WantedBy=multi-user.target", "After=network-online.target", "TimeoutStopSec=30"} {
		if !strings.Contains(out, want) {
			t.Errorf("unit lacks %q:\n%s", want, out)
		}
	}
	unit := filepath.Join(t.TempDir(), name+".service")
	if err := os.WriteFile(unit, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(v)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, v)
	}
	// A broken unit must fail the same check (the check can fail).
	bad := strings.Replace(out, "Restart=on-failure", "Restart=sometimes", 1)
	os.WriteFile(unit, []byte(bad), 0o644)
	if v, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err == nil && len(bytes.TrimSpace(v)) == 0 {
		t.Fatal("systemd-analyze verify accepted Restart=sometimes: the check proves nothing")
	}
}

func TestUnitRefusesUnsafePath(t *testing.T) {
	spec, _ := testSpec(t)
	spec.Config = "/etc/life boat/agent.toml"
	if _, err := run(t, spec, "install", "--init", "systemd", "--print"); err == nil || !strings.Contains(err.Error(), "without spaces") {
		t.Fatalf("a config path with a space: %v", err)
	}
}

// TestSystemdInstallUninstall registers a unit on this machine with
// systemctl (offline when systemd is not PID 1), checks it, and removes it.
func TestSystemdInstallUninstall(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "systemctl", "systemd-analyze")
	spec, name := testSpec(t)
	cleanup(t, name)
	if _, err := run(t, spec, "install", "--init", "systemd"); err != nil {
		t.Fatal(err)
	}
	unit := "/etc/systemd/system/" + name + ".service"
	if v, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(v)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, v)
	}
	if l, err := os.Readlink("/etc/systemd/system/multi-user.target.wants/" + name + ".service"); err != nil || l != unit {
		t.Errorf("not enabled: link %q, %v", l, err)
	}
	// Installing again replaces the registration.
	if _, err := run(t, spec, "install", "--init", "systemd"); err != nil {
		t.Fatalf("install again: %v", err)
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		if _, err := run(t, spec, "start", "--init", "systemd"); err == nil || !strings.Contains(err.Error(), "systemd is not running") {
			t.Errorf("start without systemd: %v", err)
		}
	}
	if _, err := run(t, spec, "uninstall", "--init", "systemd"); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(name); len(left) > 0 {
		t.Fatalf("uninstall left %v", left)
	}
}

// TestSysVLifecycle installs an init script, starts, stops and removes it.
func TestSysVLifecycle(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "service")
	spec, name := testSpec(t)
	cleanup(t, name)
	if _, err := run(t, spec, "status", "--init", "sysv"); !errors.Is(err, ErrNotInstalled) || ExitCode(err) != 4 {
		t.Fatalf("status before install: %v", err)
	}
	if _, err := run(t, spec, "install", "--init", "sysv"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, spec, "status", "--init", "sysv"); !errors.Is(err, ErrNotRunning) || ExitCode(err) != 3 {
		t.Fatalf("status after install: %v", err)
	}
	if _, err := run(t, spec, "start", "--init", "sysv"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/var/run/" + name + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	if !strings.Contains(string(cmdline), "sleep") {
		t.Fatalf("process %s is %q, not the program", pid, cmdline)
	}
	if _, err := run(t, spec, "status", "--init", "sysv"); err != nil {
		t.Fatalf("status while running: %v", err)
	}
	// A program that is not configured is not started.
	spec.Check = func(string) error { return errors.New("no server") }
	if _, err := run(t, spec, "restart", "--init", "sysv"); !errors.Is(err, ErrNotConfigured) || ExitCode(err) != 6 {
		t.Fatalf("restart unconfigured: %v", err)
	}
	spec.Check = nil
	if _, err := run(t, spec, "uninstall", "--init", "sysv"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s still running after uninstall", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left := leftovers(name); len(left) > 0 {
		t.Fatalf("uninstall left %v", left)
	}
}
