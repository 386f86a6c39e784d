package boot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/recovery/boot/guesttest"
)

// guestDir holds the guest built once per test run (removed by TestMain).
var (
	guestDir   string
	guestOnce  sync.Once
	theGuest   *guesttest.Guest
	guestErr   error
	checkBytes []byte
)

func TestMain(m *testing.M) {
	if os.Getenv("LIFEBOAT_BOOT_CHILD") == "1" {
		// TestBootParentKilled's child: killed outright, it could not
		// remove a directory of its own.
		os.Exit(m.Run())
	}
	d, err := os.MkdirTemp("", "lifeboat-guest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// guest returns the test guest, building it on first use: a root with a
// random /lifeboat/check whose sha256 the guest prints.
func guest(t *testing.T) *guesttest.Guest {
	t.Helper()
	testenv.RequireRoot(t) // apt-get download into the shared cache
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-img", "grub-mkimage", "mkfs.ext4", "sfdisk",
		"apt-get", "dpkg-deb", "depmod", "modprobe", "cpio", "gzip", "busybox", "nice", "ionice")
	guestOnce.Do(func() {
		checkBytes = make([]byte, 4096)
		if _, err := rand.Read(checkBytes); err != nil {
			guestErr = err
			return
		}
		theGuest, guestErr = guesttest.Build(guesttest.Options{
			Dir:   guestDir,
			Files: map[string][]byte{guesttest.CheckPath: checkBytes},
			Logf:  t.Logf,
		})
		if guestErr == nil {
			t.Logf("guest built in %s", theGuest.Took.Round(time.Millisecond))
		}
	})
	if guestErr != nil {
		t.Fatalf("build guest: %v", guestErr)
	}
	return theGuest
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// bootOptions are the test defaults: TCG timeouts that a healthy guest
// meets with room, a temporary directory the test checks is left empty.
func bootOptions(t *testing.T, disks ...string) (Options, string) {
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	return Options{
		Disks:    disks,
		Timeout:  3 * time.Minute,
		MemoryMB: 512,
		LogDir:   t.TempDir(),
		TempDir:  tmp,
		Name:     "lifeboat-test-" + randomHex(6),
		Point:    "point-42",
	}, tmp
}

// assertGone checks that no process runs under the VM's name, that pid
// (when not 0) is gone, and that tmp is empty.
func assertGone(t *testing.T, name string, pid int, tmp string) {
	t.Helper()
	if out, err := exec.Command("pgrep", "-f", "-a", "qemu-system-x86_64 -name "+name+" ").CombinedOutput(); err == nil {
		t.Errorf("qemu still runs: %s", out)
	}
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists (kill 0: %v)", pid, err)
		}
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

// TestBootGuest boots the real guest under the defaults (TCG here), keeps
// it, checks what it printed, reaches its forwarded port, checks qemu's
// priority, then stops it: one boot covers pass, verify 0 with its
// environment, NetIsolated, Keep and the image left untouched.
func TestBootGuest(t *testing.T) {
	g := guest(t)
	before := fileSHA(t, g.Image)
	o, tmp := bootOptions(t, g.Image)
	o.Net, o.GuestPort, o.Keep = NetIsolated, guesttest.HTTPPort, true
	envOut := filepath.Join(t.TempDir(), "env")
	verify := filepath.Join(t.TempDir(), "verify.sh")
	script := "#!/bin/sh\nenv | grep ^LIFEBOAT_ | sort > " + envOut + "\n" +
		"grep -q " + guesttest.Marker + " \"$LIFEBOAT_CONSOLE_LOG\" || { echo no marker; exit 3; }\n" +
		"echo verified\n"
	if err := os.WriteFile(verify, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o.Verify = verify
	// The guest prints its checksum just before the login prompt.
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped && res.VM != nil {
			res.VM.Stop()
		}
	}()
	t.Logf("boot to ready %s, verify %s, firmware %s, bus %s, accel %s, priority %s",
		res.BootToReady.Round(time.Millisecond), res.VerifyTook.Round(time.Millisecond), res.Firmware, res.Bus, res.Accel, res.Priority)
	if !res.Pass {
		t.Fatalf("boot failed: %s", res.Reason)
	}
	if res.Firmware != FirmwareSeaBIOS || res.Bus != BusVirtio || len(res.Attempts) != 1 {
		t.Errorf("firmware %s bus %s attempts %d, want seabios virtio 1", res.Firmware, res.Bus, len(res.Attempts))
	}
	wantAccel := AccelTCG
	if kvmUsable() {
		wantAccel = AccelKVM
	}
	if res.Accel != wantAccel {
		t.Errorf("accel %s, want %s", res.Accel, wantAccel)
	}
	if res.VerifyExit != 0 || !strings.Contains(res.VerifyOutput, "verified") {
		t.Errorf("verify exit %d output %q", res.VerifyExit, res.VerifyOutput)
	}
	env, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"LIFEBOAT_CONSOLE_LOG=" + res.ConsoleLog, "LIFEBOAT_GUEST_HOST=127.0.0.1",
		fmt.Sprintf("LIFEBOAT_GUEST_PORT=%d", res.HostPort), "LIFEBOAT_POINT=point-42",
		"LIFEBOAT_VM_NAME=" + o.Name, "LIFEBOAT_FIRMWARE=seabios", "LIFEBOAT_BUS=virtio",
	} {
		if !strings.Contains(string(env), w+"\n") {
			t.Errorf("verify's environment lacks %s:\n%s", w, env)
		}
	}
	console, err := os.ReadFile(res.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(checkBytes)
	wantLine := guesttest.CheckPrefix + hex.EncodeToString(sum[:]) + "  " + guesttest.CheckPath
	if !strings.Contains(string(console), guesttest.Marker) || !strings.Contains(string(console), wantLine) {
		t.Errorf("console lacks the marker or %q:\n%s", wantLine, lastLines(string(console), 20))
	}

	// The one forwarded port reaches the guest's httpd.
	if res.HostPort == 0 || res.VM == nil || res.VM.HostPort != res.HostPort {
		t.Fatalf("no forwarded port or VM: %+v", res)
	}
	body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/check", res.HostPort), 60*time.Second)
	if err != nil {
		t.Errorf("guest port: %v", err)
	} else if string(body) != string(checkBytes) {
		t.Errorf("guest served %d bytes that differ from /lifeboat/check", len(body))
	}

	// qemu runs at the lower priority the result claims.
	pid := res.VM.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if nice := fields[16]; nice != "10" { // field 19 of stat
		t.Errorf("qemu nice %s, want 10", nice)
	}
	if out, err := exec.Command("ionice", "-p", fmt.Sprint(pid)).CombinedOutput(); err != nil || !strings.Contains(string(out), "best-effort: prio 7") {
		t.Errorf("qemu ionice %q (%v), want best-effort: prio 7", out, err)
	}
	// The kept VM's console answers on its socket.
	if err := consoleAnswers(res.VM.ConsoleSocket, 30*time.Second); err != nil {
		t.Errorf("console socket: %v", err)
	}

	stopped = true
	if err := res.VM.Stop(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, o.Name, pid, tmp)
	if after := fileSHA(t, g.Image); after != before {
		t.Errorf("the image changed: sha256 %s before, %s after", before, after)
	}
}

// consoleAnswers sends a newline to a serial console socket and waits for
// a login prompt.
func consoleAnswers(sock string, within time.Duration) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(within)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("\r")); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 1024)
	for !strings.Contains(string(got), "login:") {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("%w after %q", err, got)
		}
	}
	return nil
}

func httpGet(url string, within time.Duration) ([]byte, error) {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return b, nil
			}
			err = fmt.Errorf("status %s, %v", resp.Status, rerr)
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(time.Second)
	}
}

// TestBootVerifyFails: a verify that exits 1 fails a boot that reached
// ready; qemu and the temporary files are gone.
func TestBootVerifyFails(t *testing.T) {
	g := guest(t)
	o, tmp := bootOptions(t, g.Image)
	o.Bus = BusVirtio
	verify := filepath.Join(t.TempDir(), "verify.sh")
	if err := os.WriteFile(verify, []byte("#!/bin/sh\necho \"point $LIFEBOAT_POINT is wrong\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o.Verify = verify
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to ready %s, reason: %s", res.BootToReady.Round(time.Millisecond), res.Reason)
	if res.Pass || res.VerifyExit != 1 || !strings.Contains(res.Reason, "exited 1") || !strings.Contains(res.Reason, "point point-42 is wrong") {
		t.Fatalf("pass %v exit %d reason %q", res.Pass, res.VerifyExit, res.Reason)
	}
	if res.VM != nil {
		t.Error("a failed boot returned a VM")
	}
	assertGone(t, o.Name, 0, tmp)
}

// TestBootDamagedKernel: a copy of the guest whose kernel blocks are
// overwritten fails on both buses with the console's reason, and leaves
// nothing behind.
func TestBootDamagedKernel(t *testing.T) {
	g := guest(t)
	img := filepath.Join(t.TempDir(), "damaged.img")
	if out, err := exec.Command("cp", "--sparse=always", g.Image, img).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	off, n, err := guesttest.DamageKernel(img, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("damaged %d bytes of the kernel at %d", n, off)
	o, tmp := bootOptions(t, img)
	o.Timeout = 2 * time.Minute
	begin := time.Now()
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failed in %s: %s", time.Since(begin).Round(time.Millisecond), res.Reason)
	if res.Pass {
		t.Fatal("a damaged kernel booted")
	}
	if len(res.Attempts) != 2 || res.Attempts[0].Bus != BusVirtio || res.Attempts[1].Bus != BusSATA {
		t.Errorf("attempts %+v, want virtio then sata", res.Attempts)
	}
	if !strings.Contains(res.Reason, "the console shows a failure") && !strings.Contains(res.Reason, "before it was ready") {
		t.Errorf("reason is not the console's failure or qemu's exit: %s", res.Reason)
	}
	assertGone(t, o.Name, 0, tmp)
}

// TestBootCancel: cancelling during the boot kills qemu and removes the
// temporary files.
func TestBootCancel(t *testing.T) {
	g := guest(t)
	o, tmp := bootOptions(t, g.Image)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := Boot(ctx, o)
		done <- out{r, err}
	}()
	pid := 0
	for deadline := time.Now().Add(30 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := exec.Command("pgrep", "-f", "qemu-system-x86_64 -name "+o.Name+" ").Output(); err == nil {
			fmt.Sscan(string(b), &pid)
		}
	}
	if pid == 0 {
		t.Fatal("qemu did not start within 30s")
	}
	time.Sleep(2 * time.Second)
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Boot did not return within 30s of the cancel")
	}
	assertGone(t, o.Name, pid, tmp)
}

// TestBootFallbackBus: a guest without the virtio_blk driver cannot find
// its root on virtio-blk (its initramfs exits, the kernel panics), so the
// automatic bus boots it again on AHCI, where it comes up; the result says
// which bus was used and what happened on the other.
func TestBootFallbackBus(t *testing.T) {
	guest(t) // the requirements, and the .debs in the cache
	dir := filepath.Join(t.TempDir(), "novirtio")
	g, err := guesttest.Build(guesttest.Options{Dir: dir, NoVirtioDisk: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	o, tmp := bootOptions(t, g.Image)
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Attempts {
		t.Logf("%s: ready %v after %s %s", a.Bus, a.Ready, a.Took.Round(time.Millisecond), firstLine(a.Reason))
	}
	if !res.Pass || res.Bus != BusSATA {
		t.Fatalf("pass %v bus %s, want a pass on sata: %s", res.Pass, res.Bus, res.Reason)
	}
	if len(res.Attempts) != 2 || res.Attempts[0].Ready || !strings.Contains(res.Attempts[0].Reason, "Kernel panic - not syncing") {
		t.Errorf("attempts %+v, want virtio failing with a panic first", res.Attempts)
	} else if b, err := os.ReadFile(res.Attempts[0].ConsoleLog); err != nil || !strings.Contains(string(b), "no root partition") {
		t.Errorf("the virtio console log does not say the root was missing (%v)", err)
	}
	assertGone(t, o.Name, 0, tmp)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// TestBootUEFI: a GPT guest with an EFI system partition boots under OVMF
// (chosen from its partition table), its kernel started by the UEFI shell;
// the copy of the UEFI variables goes with the temporary directory.
func TestBootUEFI(t *testing.T) {
	guest(t)
	testenv.RequireCommand(t, "mkfs.vfat", "mcopy")
	g, err := guesttest.Build(guesttest.Options{Dir: filepath.Join(t.TempDir(), "uefi"), UEFI: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	before := fileSHA(t, g.Image)
	o, tmp := bootOptions(t, g.Image)
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to ready %s, firmware %s, bus %s", res.BootToReady.Round(time.Millisecond), res.Firmware, res.Bus)
	if !res.Pass || res.Firmware != FirmwareOVMF || res.Bus != BusVirtio {
		t.Fatalf("pass %v firmware %s bus %s, want a pass with ovmf on virtio: %s", res.Pass, res.Firmware, res.Bus, res.Reason)
	}
	console, err := os.ReadFile(res.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(console), guesttest.Marker) {
		t.Errorf("console lacks the marker:\n%s", lastLines(string(console), 20))
	}
	assertGone(t, o.Name, 0, tmp)
	if after := fileSHA(t, g.Image); after != before {
		t.Errorf("the image changed: sha256 %s before, %s after", before, after)
	}
}

// TestBootParentKilled: when the process running Boot is killed outright
// (no cancel, no cleanup), the kernel kills qemu (Pdeathsig). The
// temporary directory stays in that case: nobody is left to remove it.
func TestBootParentKilled(t *testing.T) {
	if os.Getenv("LIFEBOAT_BOOT_CHILD") == "1" {
		o := Options{Disks: []string{os.Getenv("LIFEBOAT_BOOT_IMAGE")}, Name: os.Getenv("LIFEBOAT_BOOT_NAME"),
			TempDir: os.Getenv("LIFEBOAT_BOOT_TMP"), LogDir: os.Getenv("LIFEBOAT_BOOT_TMP"), Timeout: time.Minute}
		Boot(context.Background(), o)
		return
	}
	g := guest(t)
	name := "lifeboat-test-" + randomHex(6)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBootParentKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LIFEBOAT_BOOT_CHILD=1", "LIFEBOAT_BOOT_IMAGE="+g.Image,
		"LIFEBOAT_BOOT_NAME="+name, "LIFEBOAT_BOOT_TMP="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pid := 0
	for deadline := time.Now().Add(30 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := exec.Command("pgrep", "-f", "qemu-system-x86_64 -name "+name+" ").Output(); err == nil {
			fmt.Sscan(string(b), &pid)
		}
	}
	if pid == 0 {
		t.Fatal("qemu did not start within 30s")
	}
	time.Sleep(time.Second)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("qemu (pid %d) outlived the killed process that started it", pid)
}
