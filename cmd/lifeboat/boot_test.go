package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootCLI: the flag rules of failover --boot, drill and vms, the
// server's checks of a boot test, and a boot test whose images cannot
// boot (no partition table: firmware detection fails before qemu starts)
// ending as an error with a hint and no temporary image left. The real
// boots are in e2e (TestBootVerifiedFailoverAndDrills).
func TestBootCLI(t *testing.T) {
	dir := replicate(t)
	env := map[string]string{"LIFEBOAT_DATA": dir}
	rel := filepath.Join("rel", "v.sh")
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"boot without test", []string{"failover", "web1", "--point", "latest", "--boot"}, []string{"--boot needs --test", "hint:"}},
		{"boot flags without boot", []string{"failover", "web1", "--point", "latest", "--test", "--out", t.TempDir(), "--net", "isolated"}, []string{"go with --boot"}},
		{"boot and check", []string{"failover", "web1", "--point", "latest", "--test", "--boot", "--check"}, []string{"do not go together"}},
		{"unknown network", []string{"failover", "web1", "--point", "latest", "--test", "--boot", "--net", "bridge"}, []string{"400", "unknown network", "hint:"}},
		{"relative verify", []string{"failover", "web1", "--point", "latest", "--test", "--boot", "--verify", rel}, []string{"absolute path on the server host", "hint:"}},
		{"bad ready", []string{"failover", "web1", "--point", "latest", "--test", "--boot", "--ready", "("}, []string{"bad --ready pattern"}},
		{"unknown point", []string{"failover", "web1", "--point", "zz", "--test", "--boot"}, []string{"404", "no point"}},
		{"not bootable", []string{"failover", "web1", "--point", "p2", "--test", "--boot"}, []string{"boot:", "hint:"}},
		{"drill interval too short", []string{"drill", "set", "web1", "--interval", "5s"}, []string{"too short", "hint:"}},
		{"stop unknown vm", []string{"vms", "stop", "nope"}, []string{"404", "no kept VM", "hint: 'lifeboat vms'"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, err := run(t, env, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "boot-tmp")); err == nil && len(ents) > 0 {
		t.Errorf("temporary images left: %v", ents)
	}
	if out := mustRun(t, env, "vms"); !strings.Contains(out, "no kept VM") {
		t.Errorf("vms: %s", out)
	}
	if out := mustRun(t, env, "drill", "set", "web1", "--interval", "24h"); !strings.Contains(out, "drills of web1 every 24h0m0s, next") {
		t.Errorf("drill set: %s", out)
	}
	if out := mustRun(t, env, "drill", "list"); !strings.Contains(out, "web1") || !strings.Contains(out, "24h0m0s") {
		t.Errorf("drill list: %s", out)
	}
	// The drill keys of the machine's policy are the same record.
	before := mustRun(t, env, "policy", "show", "web1")
	mustRun(t, env, "policy", "set", "web1", "--drill-interval", "12h", "--drill-timeout", "5m")
	if out := mustRun(t, env, "drill", "show", "web1"); !strings.Contains(out, "drills of web1 every 12h0m0s") {
		t.Errorf("drill show after policy set --drill-interval: %s", out)
	}
	after := mustRun(t, env, "policy", "show", "web1")
	if !strings.Contains(after, "drills every 12h0m0s") {
		t.Errorf("policy show: %s", after)
	}
	if strings.SplitN(before, "\n", 3)[1] != strings.SplitN(after, "\n", 3)[1] {
		t.Errorf("the retention policy changed with the drill keys:\n%s\n%s", before, after)
	}
}

func TestReasonSummary(t *testing.T) {
	r := "virtio bus: the guest reset or powered off before it was ready (qemu exited 0); last console lines:\nBooting `x'\nsata bus: the console did not match \"login:\" within 2m0s; last console lines:\nfoo"
	want := "virtio bus: the guest reset or powered off before it was ready (qemu exited 0); sata bus: the console did not match \"login:\" within 2m0s"
	if got := reasonSummary(r); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := reasonSummary("verify /v.sh exited 1; its output:\nno"); got != "verify /v.sh exited 1; its output: …" {
		t.Errorf("got %q", got)
	}
}
