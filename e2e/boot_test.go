//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/recovery/boot/guesttest"
)

// TestBootVerifiedFailoverAndDrills protects a real bootable guest disk
// (its root partition mounted on the host) while a writer changes files,
// and proves with real qemu boots (TCG here) that:
//   - a boot-verified test failover of a point passes, and the guest's
//     console prints the sha256 of /lifeboat/check as it was at the point;
//   - a scheduled drill (set by policy, kicked at once) boots the newer
//     point and shows the newer content; its --verify exiting 1 fails it,
//     raises drill-failed (in lifeboat machines and the metric);
//   - a drill run now whose verify checks the console passes and clears
//     the alert;
//   - a point whose kernel blocks were damaged fails with a clear reason
//     and leaves no qemu process and no image;
//   - none of this changed the machine's state.
//
// One guest build and four boots keep it to a few minutes under TCG.
func TestBootVerifiedFailoverAndDrills(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-img", "grub-mkimage", "mkfs.ext4", "sfdisk", "partx",
		"apt-get", "dpkg-deb", "depmod", "modprobe", "cpio", "gzip", "busybox", "nice", "ionice", "pgrep")
	begin := time.Now()
	g, err := guesttest.Build(guesttest.Options{Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatalf("build guest: %v", err)
	}
	t.Logf("guest built in %s", g.Took.Round(time.Millisecond))
	loop := testenv.NewLoop(t, 0, testenv.WithBacking(g.Image), testenv.WithPartScan(1))
	root := mount(t, loop.Partition(1))

	srv := startServerWith(t, "--metrics", "127.0.0.1:0", "--alert-interval", "200ms")
	const machine = "boot-guest"
	ag := startAgent(t, srv, machine, []string{loop.Path})
	stopWriter := startWriter(t, filepath.Join(root, "churn"))
	t.Cleanup(stopWriter)

	// Point 1: /lifeboat/check has content A.
	sumA := writeCheck(t, root, "content A ")
	p1 := ag.bookmark()
	t.Logf("point 1 %s after %s", p1, time.Since(begin).Round(time.Second))

	// Boot-verified test failover of point 1, kept running on the
	// isolated network: its forwarded port serves the check file.
	out, err := srv.lifeboat("failover", machine, "--point", p1, "--test", "--boot", "--timeout", "3m", "--json",
		"--keep", "--net", "isolated", "--guest-port", strconv.Itoa(guesttest.HTTPPort))
	if err != nil {
		t.Fatalf("boot test of point 1: %v\n%s", err, out)
	}
	var r1 api.BootResult
	if err := json.Unmarshal([]byte(out), &r1); err != nil {
		t.Fatalf("failover --boot --json: %v: %s", err, out)
	}
	t.Logf("point 1 booted: materialize %.1fs, boot to ready %.1fs (bus %s, %s, %s), total %.1fs",
		r1.MaterializeSeconds, r1.BootToReadySeconds, r1.Bus, r1.Accel, r1.Priority, r1.TotalSeconds)
	if !r1.Pass || r1.Point.ID != p1 || r1.Bus == "" || r1.Firmware != "seabios" || !strings.Contains(r1.Priority, "nice 10") {
		t.Fatalf("boot test of point 1: %+v", r1)
	}
	consoleShows(t, r1.ConsoleLog, sumA)
	if r1.VM == nil || r1.VM.HostPort == 0 {
		t.Fatalf("no kept VM with a forwarded port: %+v", r1.VM)
	}
	if vms, err := srv.lifeboat("vms"); err != nil || !strings.Contains(vms, r1.VM.ID) || !strings.Contains(vms, "UNIX-CONNECT:"+r1.VM.ConsoleSocket) {
		t.Errorf("lifeboat vms: %v\n%s", err, vms)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/check", r1.VM.HostPort)); hexSHA(got) != sumA {
		t.Errorf("the guest's forwarded port serves a check file with sha256 %s, want %s", hexSHA(got), sumA)
	}
	if out, err := srv.lifeboat("vms", "stop", r1.VM.ID); err != nil {
		t.Fatalf("vms stop: %v\n%s", err, out)
	}
	assertNoBootLeft(t, srv)

	// Point 2: content B; the writer goes on.
	sumB := writeCheck(t, root, "content B ")
	p2 := ag.bookmark()
	if p2 == p1 {
		t.Fatalf("second point %s is the first", p2)
	}

	// A drill policy whose verify exits 1: the scheduler runs it at once
	// (on the latest point, p2); it fails and raises drill-failed.
	scripts := t.TempDir()
	failScript := writeScript(t, scripts, "fail.sh", "#!/bin/sh\necho verify says no\nexit 1\n")
	if out, err := srv.lifeboat("drill", "set", machine, "--interval", "1h", "--verify", failScript, "--timeout", "3m"); err != nil {
		t.Fatalf("drill set: %v\n%s", err, out)
	}
	d := waitDrill(t, srv, machine, func(d api.DrillStatus) bool { return d.LastDrill != nil && !d.Running })
	t.Logf("scheduled drill: pass %v, reason %q, ready %.1fs, verify exit %d", d.LastDrill.Pass, d.LastDrill.Reason, d.LastDrill.BootToReadySeconds, d.LastDrill.VerifyExit)
	// The latest point: p2, or a later one the agent cut on its own.
	if d.LastDrill.Pass || d.LastDrill.VerifyExit != 1 || d.LastDrill.Point.ID == p1 || !d.LastDrill.Drill {
		t.Fatalf("drill with a failing verify: %+v", d.LastDrill)
	}
	consoleShows(t, d.LastDrill.ConsoleLog, sumB) // the newer point's content
	waitAlert(t, srv, machine, api.AlertDrillFailed, true)
	if v := value(t, scrapeURL(t, "http://"+srv.metrics+"/metrics"), "lifeboat_drill_last_pass", "machine", machine); v != 0 {
		t.Errorf("lifeboat_drill_last_pass = %v after a failed drill", v)
	}
	if out, err := srv.lifeboat("machines"); err != nil || !strings.Contains(out, "DRILL "+machine+": FAIL "+d.LastDrill.Point.ID) {
		t.Errorf("lifeboat machines does not show the failed drill: %v\n%s", err, out)
	}

	// A verify that checks the console for content B: run now, passes,
	// clears the alert.
	passScript := writeScript(t, scripts, "pass.sh", fmt.Sprintf("#!/bin/sh\ngrep -q '%s%s' \"$LIFEBOAT_CONSOLE_LOG\" && test -n \"$LIFEBOAT_POINT\"\n",
		guesttest.CheckPrefix, sumB))
	if out, err := srv.lifeboat("drill", "set", machine, "--interval", "1h", "--verify", passScript, "--timeout", "3m"); err != nil {
		t.Fatalf("drill set: %v\n%s", err, out)
	}
	d = waitDrill(t, srv, machine, func(d api.DrillStatus) bool {
		return d.LastDrill != nil && !d.Running && d.LastDrill.Verify == passScript
	})
	if !d.LastDrill.Pass || d.LastDrill.VerifyExit != 0 || d.LastPass == nil {
		t.Fatalf("drill with a passing verify: %+v", d.LastDrill)
	}
	waitAlert(t, srv, machine, api.AlertDrillFailed, false)
	if v := value(t, scrapeURL(t, "http://"+srv.metrics+"/metrics"), "lifeboat_drill_last_pass", "machine", machine); v != 1 {
		t.Errorf("lifeboat_drill_last_pass = %v after a passing drill", v)
	}
	// Drills off again so that no scheduled drill races the next step.
	if out, err := srv.lifeboat("drill", "set", machine, "--interval", "0"); err != nil {
		t.Fatalf("drill set off: %v\n%s", err, out)
	}

	// Point 3: the kernel's blocks damaged in place on the source.
	damageKernel(t, filepath.Join(root, "boot", "vmlinuz"))
	p3 := ag.bookmark()
	out, err = srv.lifeboat("failover", machine, "--point", p3, "--test", "--boot", "--timeout", "2m", "--json")
	if err == nil {
		t.Fatalf("a damaged kernel booted:\n%s", out)
	}
	var r3 api.BootResult
	if jerr := json.Unmarshal([]byte(out), &r3); jerr != nil {
		t.Fatalf("failover --boot --json: %v: %v: %s", jerr, err, out)
	}
	t.Logf("damaged kernel: %s (in %.1fs); the CLI said: %v", r3.Reason, r3.TotalSeconds, err)
	if r3.Pass || !strings.Contains(r3.Reason, "bus:") || !strings.Contains(err.Error(), "boot test failed") {
		t.Errorf("damaged kernel: result %+v, error %v", r3, err)
	}
	assertNoBootLeft(t, srv)

	// Ctrl-C during a boot: the request ends, qemu and the temporary
	// images go.
	interrupted(t, srv, machine, p1)

	// The machine's state never changed.
	ms, err := srv.lifeboat("machines", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var machines []api.Machine
	if err := json.Unmarshal([]byte(ms), &machines); err != nil {
		t.Fatal(err)
	}
	if len(machines) != 1 || machines[0].State != api.StateProtected {
		t.Errorf("machines after boot tests and drills: %s", ms)
	}
	t.Logf("whole test %s", time.Since(begin).Round(time.Second))
}

// startWriter writes files under dir until stopped.
func startWriter(t *testing.T, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for i := 0; ctx.Err() == nil; i++ {
			rand.Read(buf)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i%64)), buf, 0o644); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// writeCheck writes /lifeboat/check on the mounted root, makes it
// durable, and returns its sha256.
func writeCheck(t *testing.T, root, prefix string) string {
	t.Helper()
	b := make([]byte, 8192)
	rand.Read(b)
	b = append([]byte(prefix), b...)
	p := filepath.Join(root, strings.TrimPrefix(guesttest.CheckPath, "/"))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, "sync", "-f", p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// damageKernel overwrites the kernel file in place after its first 4 KiB
// (the same blocks: no truncation), so that GRUB loads it and it does not
// decompress.
func damageKernel(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 1024))
	for off := int64(4096); off+4096 <= st.Size(); off += 4096 {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	run(t, "sync", "-f", path)
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// consoleShows fails unless the console log prints sum as the checksum of
// the check file.
func consoleShows(t *testing.T, log, sum string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("console log: %v", err)
	}
	want := guesttest.CheckPrefix + sum
	if !strings.Contains(string(b), want) {
		got := "(no checksum line)"
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, guesttest.CheckPrefix) {
				got = strings.TrimSpace(l)
			}
		}
		t.Fatalf("console %s does not show %q; it shows %q", log, want, got)
	}
}

// waitDrill polls lifeboat drill show until ok.
func waitDrill(t *testing.T, srv *server, machine string, ok func(api.DrillStatus) bool) api.DrillStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := srv.lifeboat("drill", "show", machine, "--json")
		if err != nil {
			t.Fatalf("drill show: %v", err)
		}
		var d api.DrillStatus
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("drill show --json: %v: %s", err, out)
		}
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("drill not done: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAlert waits until an alert of the machine is active (or cleared).
func waitAlert(t *testing.T, srv *server, machine, kind string, active bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := srv.lifeboat("machines", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var ms []api.Machine
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ms {
			for _, a := range m.Alerts {
				if m.Name == machine && a.Alert == kind {
					found = true
				}
			}
		}
		if found == active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s of %s active=%v, want %v: %s", kind, machine, found, active, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// assertNoBootLeft checks that no qemu of the server runs and that its
// temporary images and overlays are gone.
func assertNoBootLeft(t *testing.T, srv *server) {
	t.Helper()
	tmp := filepath.Join(srv.data, "boot-tmp")
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			t.Errorf("left behind in %s: %s", tmp, e.Name())
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Error(err)
	}
	// qemu's command line holds the overlay under the data directory.
	if out, err := exec.Command("pgrep", "-f", "-a", "qemu-system-x86_64 .*"+tmp).CombinedOutput(); err == nil {
		t.Errorf("qemu still runs: %s", out)
	}
}

// httpGet fetches url, retrying for a few seconds while the guest's
// httpd starts (ready is the login prompt, printed after it).
func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return b
			}
			err = fmt.Errorf("status %d, %v", resp.StatusCode, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// interrupted starts a boot test, interrupts the CLI once qemu runs, and
// checks that the server kills qemu and removes the temporary images.
func interrupted(t *testing.T, srv *server, machine, point string) {
	t.Helper()
	cmd := exec.Command(bin("lifeboat"), "--data", srv.data, "failover", machine, "--point", point, "--test", "--boot")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tmp := filepath.Join(srv.data, "boot-tmp")
	deadline := time.Now().Add(time.Minute)
	for exec.Command("pgrep", "-f", "qemu-system-x86_64 .*"+tmp).Run() != nil {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatal("qemu did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := <-done; err == nil {
		t.Error("an interrupted boot test exited 0")
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		ents, _ := os.ReadDir(tmp)
		if exec.Command("pgrep", "-f", "qemu-system-x86_64 .*"+tmp).Run() != nil && len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			assertNoBootLeft(t, srv)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
