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
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

const diskSize = 1 << 20

// run runs the CLI and returns its stdout and stderr.
func run(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := m.Run(ctx, args)
	if err != nil {
		printError(&errOut, err)
	}
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, env, args...)
	if err != nil {
		t.Fatalf("lifeboat %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// replicate starts a server on a new data directory and replicates two
// disks of web1 with three points to it.
func replicate(t *testing.T) string {
	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	ctx := context.Background()
	if _, err := a.Process.SetMachine(ctx, []api.DiskSpec{{Name: "sda", Size: diskSize}, {Name: "sdb", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	for _, disk := range []string{"sda", "sdb"} {
		for seq, p := range []struct {
			id   string
			kind hrlfmt.CutKind
			fill byte
		}{{"p0", hrlfmt.CutCrash, 'a'}, {"p1", hrlfmt.CutApp, 'b'}, {"p2", hrlfmt.CutCrash, 'c'}} {
			sg := servertest.Segment{Machine: "web1", Disk: disk, DiskSize: diskSize, Seq: uint64(seq), Gen: uint64(seq + 1),
				Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{p.fill}, 4096)}},
				Cuts:   []hrlfmt.Cut{{Kind: p.kind, PointID: p.id, Time: time.Now()}}}
			if _, err := a.Process.PutSegmentFile(ctx, disk, uint64(seq), sg.Build(t, t.TempDir())); err != nil {
				t.Fatal(err)
			}
		}
	}
	servertest.WaitFor(t, "points listed", func() bool {
		ps, err := a.Process.Point(ctx, "p2")
		return err == nil && ps.Listed
	})
	return dir
}

func TestCLI(t *testing.T) {
	dir := replicate(t)
	env := map[string]string{"LIFEBOAT_DATA": dir}

	out := mustRun(t, nil, "--data", dir, "machines")
	if !strings.Contains(out, "MACHINE") || !strings.Contains(out, "web1") || !strings.Contains(out, "sda,sdb") || !strings.Contains(out, "p2 (crash)") {
		t.Errorf("machines:\n%s", out)
	}
	var ms []api.Machine
	if err := json.Unmarshal([]byte(mustRun(t, env, "machines", "--json")), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "web1" || ms[0].Points != 3 || len(ms[0].Disks) != 2 || ms[0].Disks[1].NextSeq != 3 {
		t.Errorf("machines --json: %+v", ms)
	}

	out = mustRun(t, env, "points", "web1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[2], "p1") || !strings.Contains(lines[2], "app") {
		t.Errorf("points:\n%s", out)
	}
	var pts []api.Point
	if err := json.Unmarshal([]byte(mustRun(t, env, "points", "--json", "web1")), &pts); err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || pts[1].ID != "p1" || pts[1].Kind != "app" || strings.Join(pts[1].Disks, ",") != "sda,sdb" {
		t.Errorf("points --json: %+v", pts)
	}

	// failover with a relative --out, against the server given by URL.
	t.Chdir(t.TempDir())
	st, err := os.ReadFile(filepath.Join(dir, "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		APIURL string `json:"api_url"`
	}
	json.Unmarshal(st, &state)
	out = mustRun(t, nil, "failover", "web1", "--point", "latest-app", "--test", "--out", "restored", "--json",
		"--server", state.APIURL, "--ca", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "admin.crt"), "--key", filepath.Join(dir, "admin.key"))
	var res api.FailoverResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("failover --json: %v\n%s", err, out)
	}
	cwd, _ := os.Getwd()
	if res.Point.ID != "p1" || !res.Test || len(res.Images) != 2 || res.Images[0].Path != filepath.Join(cwd, "restored", "sda.img") {
		t.Errorf("failover --json: %+v", res)
	}
	for _, im := range res.Images {
		b, err := os.ReadFile(im.Path)
		if err != nil || len(b) != diskSize || b[0] != 'b' || b[4096] != 0 {
			t.Errorf("image %s: %d bytes, %v", im.Path, len(b), err)
		}
	}
	out = mustRun(t, env, "failover", "web1", "--point", "p0", "--out", filepath.Join(cwd, "p0"))
	if !strings.Contains(out, "failover of web1 at point p0") || !strings.Contains(out, filepath.Join(cwd, "p0", "sdb.img")) || !strings.Contains(out, "1MiB") {
		t.Errorf("failover:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(cwd, "p0", "sda.img")); len(b) != diskSize || b[0] != 'a' {
		t.Error("image of p0 is wrong")
	}
}

func TestCLIErrors(t *testing.T) {
	dir := replicate(t)
	env := map[string]string{"LIFEBOAT_DATA": dir}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want []string // in stderr
	}{
		{"no connection", nil, []string{"machines"}, []string{"no server given", "hint: on the server host give --data DIR"}},
		{"not running", nil, []string{"--data", t.TempDir(), "machines"}, []string{"no server.json", "hint: is 'lifeboat-server run"}},
		{"server without certificates", nil, []string{"--server", "https://127.0.0.1:1", "machines"}, []string{"--server needs --ca, --cert and --key"}},
		{"unknown machine", env, []string{"points", "nobody"}, []string{"404", "unknown machine", "hint: 'lifeboat machines'"}},
		{"unknown point", env, []string{"failover", "web1", "--point", "zz", "--out", t.TempDir()}, []string{"404", "no point", "hint:"}},
		{"no point flag", env, []string{"failover", "web1", "--out", t.TempDir()}, []string{"--point is required", "hint:"}},
		{"no out flag", env, []string{"failover", "web1", "--point", "latest"}, []string{"--out is required"}},
		{"unreachable", nil, []string{"--server", "https://127.0.0.1:1", "--ca", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "admin.crt"), "--key", filepath.Join(dir, "admin.key"), "machines"},
			[]string{"hint: cannot reach https://127.0.0.1:1"}},
		{"agent's certificate", nil, []string{"--server", "https://127.0.0.1:1", "--ca", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "server.crt"), "--key", filepath.Join(dir, "admin.key"), "machines"},
			[]string{"admin client: certificate"}},
		{"unknown command", env, []string{"frobnicate"}, []string{"unknown command"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, err := run(t, c.env, c.args...)
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
}
