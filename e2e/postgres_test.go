//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// asPostgres runs a command as the postgres user.
func asPostgres(args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
}

func pgRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := asPostgres(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// startPostgres starts a postmaster on dataDir, listening only on a unix
// socket in sockDir, and stops it at cleanup.
func startPostgres(t *testing.T, dataDir, sockDir string, port int) {
	t.Helper()
	pgRun(t, pgBin+"/pg_ctl", "-D", dataDir, "-w", "-t", "60", "-l", filepath.Join(sockDir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses='' -c fsync=on", port, sockDir), "start")
	t.Cleanup(func() {
		asPostgres(pgBin+"/pg_ctl", "-D", dataDir, "-m", "immediate", "-w", "stop").Run()
	})
}

// TestPostgresAppConsistent: a PostgreSQL database on the protected disk,
// pgbench running, an app-consistent point taken with the shipped script
// (CHECKPOINT before the freeze); a second postmaster started on a copy of
// the failover image recovers and passes pgbench's balance invariants.
func TestPostgresAppConsistent(t *testing.T) {
	requireE2E(t)
	testenv.RequireCommand(t, pgBin+"/initdb", pgBin+"/pgbench", "runuser", "psql")
	loop := testenv.NewLoop(t, 1024*mib)
	run(t, "mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", loop.Path)
	mnt := mount(t, loop.Path)
	sock := t.TempDir()
	for _, d := range []string{mnt, sock} {
		run(t, "chown", "postgres:postgres", d)
	}
	os.Chmod(sock, 0o755)
	// The postgres user must reach the test's directories.
	for _, d := range []string{filepath.Dir(mnt), filepath.Dir(sock)} {
		os.Chmod(d, 0o755)
	}
	data := filepath.Join(mnt, "pgdata")
	pgRun(t, pgBin+"/initdb", "-D", data, "-A", "trust", "-U", "postgres")
	startPostgres(t, data, sock, 5911)
	pgRun(t, pgBin+"/pgbench", "-h", sock, "-p", "5911", "-i", "-s", "4", "postgres")

	// The shipped script, pointed at this server by a wrapper.
	scripts := t.TempDir()
	shipped, err := filepath.Abs("../contrib/scripts.d/10-postgresql")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexport PGHOST=" + sock + " PGPORT=5911\nexec " + shipped + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(scripts, "10-postgresql"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}

	srv := startServer(t)
	ag := startAgent(t, srv, "pg-host", []string{loop.Path}, "--scripts", scripts, "--app-interval", "-1s")
	ag.bookmark()

	bench := asPostgres(pgBin+"/pgbench", "-h", sock, "-p", "5911", "-c", "4", "-T", "120", "-n", "postgres")
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bench.Process.Kill(); bench.Wait() })
	time.Sleep(3 * time.Second)
	out, err := ag.ctl("bookmark", "--app-consistent", "--wait")
	if err != nil {
		st, _ := ag.ctl("status")
		t.Fatalf("app-consistent bookmark under pgbench: %v\n%s", err, st)
	}
	id := strings.TrimSpace(out)
	bench.Process.Kill()
	bench.Wait()

	img := srv.failover("pg-host", id, filepath.Base(loop.Path))
	imgLoop := testenv.NewLoop(t, 0, testenv.WithBacking(img))
	imgMnt := mount(t, imgLoop.Path)
	sock2 := t.TempDir()
	run(t, "chown", "postgres:postgres", sock2)
	os.Chmod(sock2, 0o755)
	os.Chmod(filepath.Dir(sock2), 0o755)
	os.Chmod(filepath.Dir(imgMnt), 0o755)
	os.Remove(filepath.Join(imgMnt, "pgdata", "postmaster.pid"))
	startPostgres(t, filepath.Join(imgMnt, "pgdata"), sock2, 5912)
	q := `SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
	      AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(tbalance) FROM pgbench_tellers)
	      AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
	      (SELECT count(*) FROM pgbench_history)`
	res := strings.TrimSpace(pgRun(t, "psql", "-h", sock2, "-p", "5912", "-XAtq", "-d", "postgres", "-c", q))
	t.Logf("invariants|transactions in the image: %s", res)
	if !strings.HasPrefix(res, "t|") || strings.HasSuffix(res, "|0") {
		t.Fatalf("pgbench invariants on the failover image: %q; want true with transactions", res)
	}
}
