//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/recovery/recoverytest"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// site is a running server with its data directory.
type site struct {
	t   *testing.T
	dir string
	srv *server.Server
	env map[string]string
}

func newSite(t *testing.T) *site {
	dir := servertest.Init(t)
	srv := servertest.Start(t, servertest.Config(t, dir))
	return &site{t: t, dir: dir, srv: srv, env: map[string]string{"LIFEBOAT_DATA": dir}}
}

// machine registers name and replicates images (disk → image file) with
// one point id at the end of each disk, then waits until it is listed.
func (s *site) machine(name string, images map[string]string, cut hrlfmt.Cut) {
	t := s.t
	a := servertest.Register(t, s.srv, s.dir, name)
	var specs []api.DiskSpec
	for disk, img := range images {
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, api.DiskSpec{Name: disk, Size: fi.Size()})
	}
	if _, err := a.Process.SetMachine(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	for disk, img := range images {
		servertest.ReplicateImage(t, a, disk, img, 0, 1, cut)
	}
	servertest.WaitFor(t, "point listed", func() bool {
		ps, err := a.Process.Point(context.Background(), cut.PointID)
		return err == nil && ps.Listed
	})
}

// simple replicates a machine with one 1 MiB disk sda holding fill.
func (s *site) simple(name string, fill byte, cuts ...hrlfmt.Cut) {
	t := s.t
	a := servertest.Register(t, s.srv, s.dir, name)
	for i, c := range cuts {
		sg := servertest.Segment{Machine: name, Disk: "sda", DiskSize: diskSize, Seq: uint64(i), Gen: uint64(i + 1),
			Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{fill + byte(i)}, 4096)}}, Cuts: []hrlfmt.Cut{c}}
		if c.Kind == hrlfmt.CutApp {
			sg.Notes = []hrlfmt.Note{{PointID: c.PointID, Freeze: 12500 * time.Microsecond, Text: `{"scripts":[{"path":"/pre.sh","exit":0}]}`}}
		}
		if _, err := a.Process.PutSegmentFile(context.Background(), "sda", uint64(i), sg.Build(t, t.TempDir())); err != nil {
			t.Fatal(err)
		}
	}
	servertest.WaitFor(t, "points listed", func() bool {
		ps, err := a.Process.Point(context.Background(), cuts[len(cuts)-1].PointID)
		return err == nil && ps.Listed
	})
}

func (s *site) machines() map[string]api.Machine {
	var ms []api.Machine
	if err := json.Unmarshal([]byte(mustRun(s.t, s.env, "machines", "--json")), &ms); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]api.Machine{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// TestCLIPointsPolicyPrune: 'points' shows kind, freeze (ms) and
// materializable, and --json has the documented fields; 'policy set'
// changes only the flags given and 'policy show' reads it back; 'prune'
// prints what it did; 'machines' shows the state and no problem.
func TestCLIPointsPolicyPrune(t *testing.T) {
	s := newSite(t)
	s.simple("web1", 'a', servertest.Cut("c0"), hrlfmt.Cut{Kind: hrlfmt.CutApp, PointID: "a1", Time: time.Now()})
	out := mustRun(t, s.env, "points", "web1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "FREEZE") || !strings.Contains(lines[0], "MATERIALIZABLE") ||
		!strings.Contains(lines[2], "12.5 ms") || !strings.Contains(lines[2], "app") || !strings.Contains(lines[2], "yes") || !strings.Contains(lines[1], " - ") {
		t.Errorf("points:\n%s", out)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, s.env, "points", "web1", "--json")), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 {
		t.Fatalf("points --json: %v", raw)
	}
	for _, k := range []string{"id", "time", "kind", "gen", "disks", "freeze_ns", "freeze_seconds", "materializable", "note"} {
		if _, ok := raw[1][k]; !ok {
			t.Errorf("points --json lacks %q: %v", k, raw[1])
		}
	}
	if raw[1]["freeze_ns"] != 12500000.0 || raw[1]["freeze_seconds"] != 0.0125 || raw[1]["materializable"] != true || !strings.Contains(raw[1]["note"].(string), "/pre.sh") || raw[0]["note"] != "" {
		t.Errorf("points --json: %v", raw)
	}

	out = mustRun(t, s.env, "policy", "show", "web1")
	if !strings.Contains(out, "24h") || !strings.Contains(out, "2h") || !strings.Contains(out, "the default") {
		t.Errorf("policy show:\n%s", out)
	}
	mustRun(t, s.env, "policy", "set", "web1", "--window", "48h", "--thin", "30m")
	var p api.Policy
	if err := json.Unmarshal([]byte(mustRun(t, s.env, "policy", "show", "web1", "--json")), &p); err != nil {
		t.Fatal(err)
	}
	if p != (api.Policy{Machine: "web1", WindowSeconds: 48 * 3600, KeepAllSeconds: 2 * 3600, ThinSeconds: 1800}) {
		t.Errorf("policy after set: %+v", p)
	}
	if _, errOut, err := run(t, s.env, "policy", "set", "web1", "--keep-all", "72h"); err == nil || !strings.Contains(errOut, "keep-all") || !strings.Contains(errOut, "hint:") {
		t.Errorf("keep-all beyond the window: %v\n%s", err, errOut)
	}
	out = mustRun(t, s.env, "prune", "web1")
	if !strings.Contains(out, "pruned web1 (window 48h, keep all 2h, thin 30m)") || !strings.Contains(out, "merged 0 segments") || !strings.Contains(out, "materializable: none") {
		t.Errorf("prune:\n%s", out)
	}
	out = mustRun(t, s.env, "machines")
	if !strings.Contains(out, "STATE") || !strings.Contains(out, "PROBLEMS") || !strings.Contains(out, "protected") {
		t.Errorf("machines:\n%s", out)
	}
	mustRun(t, s.env, "policy", "set", "web1", "--default")
	if out = mustRun(t, s.env, "policy", "show", "web1"); !strings.Contains(out, "the default") {
		t.Errorf("policy after --default:\n%s", out)
	}
}

// TestCLIFailoverCheckWholeDisk: --check on a whole-disk ext4 passes; on
// a corrupted one a real failover prints the failing check, exits
// non-zero, keeps the images and leaves the machine protected.
func TestCLIFailoverCheckWholeDisk(t *testing.T) {
	testenv.RequireCommand(t, "e2fsck")
	s := newSite(t)
	good := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "ext4", 32*recoverytest.MiB))
	bad := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "ext4", 32*recoverytest.MiB))
	recoverytest.CorruptExt(t, bad, 0)
	s.machine("web1", map[string]string{"sda": good}, servertest.Cut("p0"))
	s.machine("bad1", map[string]string{"sda": bad}, servertest.Cut("p0"))

	outDir := filepath.Join(t.TempDir(), "web1")
	out := mustRun(t, s.env, "failover", "web1", "--point", "latest", "--test", "--out", outDir, "--check")
	if !strings.Contains(out, "RESULT") || !strings.Contains(out, "e2fsck -fn") || !strings.Contains(out, "clean") || !strings.Contains(out, "whole") {
		t.Errorf("failover --check:\n%s", out)
	}

	badDir := filepath.Join(t.TempDir(), "bad1")
	stdout, errOut, err := run(t, s.env, "failover", "bad1", "--point", "latest", "--out", badDir, "--check", "--json")
	if err == nil {
		t.Fatal("a failed check did not fail the command")
	}
	if !strings.Contains(errOut, "filesystem check failed: disk sda, whole disk: errors: WARNING: Filesystem still has errors") || !strings.Contains(errOut, "hint: the images are kept") {
		t.Errorf("stderr:\n%s", errOut)
	}
	var res api.FailoverResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("failover --json: %v\n%s", err, stdout)
	}
	if res.CheckOK || len(res.Checks) != 1 || res.Checks[0].OK || res.Checks[0].Result != "errors" || res.Checks[0].ExitStatus == 0 || res.State != api.StateProtected {
		t.Errorf("failover --json: %+v", res)
	}
	if fi, err := os.Stat(filepath.Join(badDir, "sda.img")); err != nil || fi.Size() != 32*recoverytest.MiB {
		t.Errorf("image not kept: %v", err)
	}
	if m := s.machines()["bad1"]; m.State != api.StateProtected || m.Failover != nil {
		t.Errorf("a failed check changed the state: %+v", m)
	}
}

// TestCLIFailoverCheckGPT: --check on a GPT disk with ext4 and xfs
// partitions (and a whole-disk ext4 second disk) checks each filesystem
// through a read-only loop device, and reports them in the table and the
// JSON.
func TestCLIFailoverCheckGPT(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "losetup", "e2fsck", "xfs_repair")
	s := newSite(t)
	whole := recoverytest.WholeDiskImage(t, recoverytest.MakeFS(t, "ext4", 32*recoverytest.MiB))
	gpt, offs := recoverytest.PartitionedImage(t,
		recoverytest.Part{SizeMiB: 64, Type: "L", FS: recoverytest.MakeFS(t, "ext4", 64*recoverytest.MiB)},
		recoverytest.Part{SizeMiB: 300, Type: "L", FS: recoverytest.MakeFS(t, "xfs", recoverytest.XFSMinSize)})
	s.machine("db1", map[string]string{"sda": whole, "sdb": gpt}, hrlfmt.Cut{Kind: hrlfmt.CutApp, PointID: "a0", Time: time.Now()})
	outDir := filepath.Join(t.TempDir(), "db1")
	stdout := mustRun(t, s.env, "failover", "db1", "--point", "latest-app", "--test", "--out", outDir, "--check", "--json")
	var res api.FailoverResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		disk string
		part int
		off  int64
		typ  string
		tool string
	}{{"sda", 0, 0, "ext4", "e2fsck -fn"}, {"sdb", 1, offs[0], "ext4", "e2fsck -fn"}, {"sdb", 2, offs[1], "xfs", "xfs_repair -n"}}
	if !res.CheckOK || len(res.Checks) != len(want) {
		t.Fatalf("checks: %+v", res.Checks)
	}
	for i, w := range want {
		c := res.Checks[i]
		if c.Disk != w.disk || c.Partition != w.part || c.Offset != w.off || c.Type != w.typ || c.Tool != w.tool || c.ExitStatus != 0 || c.Result != "clean" || !c.OK ||
			c.Image != filepath.Join(outDir, w.disk+".img") || c.Summary == "" {
			t.Errorf("check %d: %+v, want %+v", i, c, w)
		}
	}
	out := mustRun(t, s.env, "failover", "db1", "--point", "a0", "--test", "--out", filepath.Join(t.TempDir(), "again"), "--check")
	if strings.Count(out, " clean ") != 3 || !strings.Contains(out, "xfs_repair -n") || !strings.Contains(out, "no corruption found") {
		t.Errorf("failover --check:\n%s", out)
	}
}

// TestCLICommit: a real failover shows the machine failed-over; commit
// shows it committed; a second commit and a commit without failover are
// refused with hints.
func TestCLICommit(t *testing.T) {
	s := newSite(t)
	s.simple("web1", 'a', servertest.Cut("p0"))
	s.simple("db1", 'x', servertest.Cut("d0"))
	_, errOut, err := run(t, s.env, "commit", "db1")
	if err == nil || !strings.Contains(errOut, "has not failed over") || !strings.Contains(errOut, "hint: commit follows a real failover") {
		t.Errorf("commit without failover: %v\n%s", err, errOut)
	}
	out := mustRun(t, s.env, "failover", "web1", "--point", "p0", "--out", t.TempDir())
	if !strings.Contains(out, "web1 is now failed-over") {
		t.Errorf("failover:\n%s", out)
	}
	if out = mustRun(t, s.env, "machines"); !strings.Contains(out, "failed-over") {
		t.Errorf("machines:\n%s", out)
	}
	out = mustRun(t, s.env, "commit", "web1")
	if !strings.Contains(out, "web1 committed at") || !strings.Contains(out, "source machine itself was not touched") {
		t.Errorf("commit:\n%s", out)
	}
	ms := s.machines()
	if ms["web1"].State != api.StateCommitted || ms["web1"].Committed == nil || ms["db1"].State != api.StateProtected {
		t.Errorf("machines --json: %+v", ms)
	}
	if out = mustRun(t, s.env, "machines"); !strings.Contains(out, "committed") {
		t.Errorf("machines:\n%s", out)
	}
	_, errOut, err = run(t, s.env, "commit", "web1")
	if err == nil || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "was failed over and committed at") {
		t.Errorf("second commit: %v\n%s", err, errOut)
	}
	// Still materializable.
	mustRun(t, s.env, "failover", "web1", "--point", "p0", "--test", "--out", t.TempDir())
}

// TestCLIPlan: create (two ordered groups and a script between them),
// show, list, test (order proved by what the script saw), a failing
// script (exit non-zero, where it stopped), delete.
func TestCLIPlan(t *testing.T) {
	s := newSite(t)
	s.simple("db1", 'd', servertest.Cut("d0"))
	s.simple("web1", 'w', servertest.Cut("w0"))
	record := filepath.Join(t.TempDir(), "record")
	sc := filepath.Join(t.TempDir(), "between.sh")
	os.WriteFile(sc, []byte(`#!/bin/sh
{ echo "$LIFEBOAT_PLAN $LIFEBOAT_GROUP $LIFEBOAT_TEST"; ls "$LIFEBOAT_OUT"; } > `+record+"\n"), 0o755)
	out := mustRun(t, s.env, "plan", "create", "shop", "--group", "db1", "--group", "web1", "--script-after-group", "1="+sc, "--script-timeout", "2m")
	if !strings.Contains(out, "plan shop created") || !strings.Contains(out, "fail over db1") || !strings.Contains(out, "run "+sc+" (timeout 2m)") {
		t.Errorf("plan create:\n%s", out)
	}
	out = mustRun(t, s.env, "plan", "show", "shop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "db1") || !strings.Contains(lines[2], sc) || !strings.Contains(lines[3], "web1") {
		t.Errorf("plan show:\n%s", out)
	}
	var ps []api.Plan
	if err := json.Unmarshal([]byte(mustRun(t, s.env, "plan", "list", "--json")), &ps); err != nil || len(ps) != 1 || ps[0].ScriptTimeoutSeconds != 120 {
		t.Errorf("plan list --json: %+v %v", ps, err)
	}
	if out = mustRun(t, s.env, "plan", "list"); !strings.Contains(out, "db1 → web1") {
		t.Errorf("plan list:\n%s", out)
	}
	outDir := filepath.Join(t.TempDir(), "restore")
	out = mustRun(t, s.env, "plan", "test", "shop", "--out", outDir)
	if !strings.Contains(out, "plan shop test: ok") || !strings.Contains(out, "failover db1") || !strings.Contains(out, "d0 (crash)") || !strings.Contains(out, "script "+sc) {
		t.Errorf("plan test:\n%s", out)
	}
	if b, _ := os.ReadFile(record); string(b) != "shop 1 1\ndb1\n" {
		t.Errorf("the script saw %q: not group 1 done and group 2 not started", b)
	}
	if _, err := os.Stat(filepath.Join(outDir, "web1", "sda.img")); err != nil {
		t.Errorf("group 2 not failed over: %v", err)
	}

	failing := filepath.Join(t.TempDir(), "fail.sh")
	os.WriteFile(failing, []byte("#!/bin/sh\nexit 7\n"), 0o755)
	mustRun(t, s.env, "plan", "create", "broken", "--group", "db1", "--script-after-group", "1="+failing, "--group", "web1")
	stdout, errOut, err := run(t, s.env, "plan", "test", "broken", "--out", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(stdout, "STOPPED") || !strings.Contains(errOut, "plan broken stopped at group 1: script "+failing+": exited with status 7") {
		t.Errorf("failing plan: %v\n%s\n%s", err, stdout, errOut)
	}
	if _, errOut, err := run(t, s.env, "plan", "create", "bad", "--group", "db1", "--script-after-group", "x"); err == nil || !strings.Contains(errOut, "bad --script-after-group") {
		t.Errorf("bad script flag: %v\n%s", err, errOut)
	}
	mustRun(t, s.env, "plan", "delete", "broken")
	if _, errOut, err := run(t, s.env, "plan", "show", "broken"); err == nil || !strings.Contains(errOut, "404") {
		t.Errorf("show deleted plan: %v\n%s", err, errOut)
	}
}
