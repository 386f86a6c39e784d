//go:build linux

package boot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Boot boots the disks of o and reports whether the guest came up (see the
// package documentation). The error is for what kept Boot from trying (bad
// options, a missing program, a cancelled ctx); a guest that does not come
// up is a Result with Pass false and a Reason. Unless o.Keep and the
// result passes, qemu is dead and the temporary files are gone when Boot
// returns, whatever happened.
//
// Verify runs with these variables added to Boot's environment:
// LIFEBOAT_CONSOLE_LOG (the console log), LIFEBOAT_GUEST_HOST (127.0.0.1)
// and LIFEBOAT_GUEST_PORT (the forwarded port, empty without network),
// LIFEBOAT_POINT, LIFEBOAT_VM_NAME, LIFEBOAT_FIRMWARE, LIFEBOAT_BUS.
func Boot(ctx context.Context, o Options) (Result, error) {
	if len(o.Disks) == 0 {
		return Result{}, api.Errorf("give the materialized images, the boot disk first", "boot: no disks")
	}
	disks := make([]string, len(o.Disks))
	for i, d := range o.Disks {
		abs, err := filepath.Abs(d)
		if err != nil {
			return Result{}, fmt.Errorf("boot: disk %s: %w", d, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return Result{}, fmt.Errorf("boot: disk: %w", err)
		}
		disks[i] = abs
	}
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if o.QEMUImg == "" {
		o.QEMUImg = "qemu-img"
	}
	for _, prog := range []string{o.QEMU, o.QEMUImg, "nice", "ionice"} {
		if _, err := exec.LookPath(prog); err != nil {
			return Result{}, api.WithHint(fmt.Errorf("boot: %w", err),
				"install qemu-system-x86 and qemu-utils (scripts/install-deps.sh)")
		}
	}
	accel := o.Accel
	switch accel {
	case AccelAuto:
		accel = AccelTCG
		if kvmUsable() {
			accel = AccelKVM
		}
	case AccelKVM:
		if !kvmUsable() {
			return Result{}, api.Errorf("load kvm_intel or kvm_amd and give this user /dev/kvm, or use TCG",
				"boot: /dev/kvm is not usable")
		}
	case AccelTCG:
	default:
		return Result{}, fmt.Errorf("boot: unknown accelerator %q", accel)
	}
	fw := o.Firmware
	if fw == FirmwareAuto {
		var err error
		if fw, err = DetectFirmware(disks[0]); err != nil {
			return Result{}, err
		}
	}
	var ovmfCode, ovmfVars string
	switch fw {
	case FirmwareOVMF:
		var err error
		if ovmfCode, ovmfVars, err = findOVMF(); err != nil {
			return Result{}, err
		}
	case FirmwareSeaBIOS:
	default:
		return Result{}, fmt.Errorf("boot: unknown firmware %q", fw)
	}
	buses := []Bus{o.Bus}
	if o.Bus == BusAuto {
		buses = []Bus{BusVirtio, BusSATA}
	}
	for _, b := range buses {
		switch b {
		case BusVirtio, BusSATA, BusIDE:
		default:
			return Result{}, fmt.Errorf("boot: unknown bus %q", b)
		}
		if len(disks) > maxDisks(b) {
			return Result{}, fmt.Errorf("boot: %d disks do not fit the %s bus (at most %d)", len(disks), b, maxDisks(b))
		}
	}
	switch o.Net {
	case NetNone, NetIsolated:
	default:
		return Result{}, fmt.Errorf("boot: unknown network %q", o.Net)
	}
	if o.GuestPort == 0 {
		o.GuestPort = DefaultGuestPort
	}
	if o.Ready == nil {
		o.Ready = DefaultReady
	}
	if o.Fail == nil {
		o.Fail = DefaultFail
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeoutTCG
		if accel == AccelKVM {
			o.Timeout = DefaultTimeoutKVM
		}
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = DefaultVerifyTimeout
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = DefaultMemoryMB
	}
	if o.CPUs == 0 {
		o.CPUs = 1
		if accel == AccelKVM {
			o.CPUs = 2
		}
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Name == "" {
		o.Name = "lifeboat-" + randomHex(6)
	}
	if o.LogDir == "" {
		d, err := defaultLogDir(o.TempDir)
		if err != nil {
			return Result{}, err
		}
		o.LogDir = d
	} else if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("boot: log directory: %w", err)
	}

	res := Result{Name: o.Name, Firmware: fw, Accel: accel, Priority: Priority, VerifyExit: -1}
	for i, b := range buses {
		p := &plan{
			name: o.Name, firmware: fw, ovmfCode: ovmfCode, accel: accel, bus: b,
			memoryMB: o.MemoryMB, cpus: o.CPUs, net: o.Net, guestPort: o.GuestPort, keep: o.Keep,
			consoleLog: consoleLogPath(o.LogDir, i == 0, b),
		}
		pr, err := start(ctx, o, p, disks, ovmfVars)
		if err != nil {
			return res, err
		}
		res.Bus, res.ConsoleLog = b, p.consoleLog
		if o.Net == NetIsolated {
			res.HostPort, res.GuestPort = p.hostPort, p.guestPort
		}
		ready, reason, took, err := pr.waitReady(ctx, o)
		res.BootToReady = took
		res.Attempts = append(res.Attempts, Attempt{Bus: b, Ready: ready, Reason: reason, Took: took, ConsoleLog: p.consoleLog})
		if err != nil {
			return res, errors.Join(err, pr.stop())
		}
		if !ready {
			res.Reason = fmt.Sprintf("%s bus: %s", b, reason)
			if serr := pr.stop(); serr != nil {
				return res, serr
			}
			continue
		}
		res.Pass, res.Reason = true, ""
		if o.Verify != "" {
			if err := runVerify(ctx, o, &res); err != nil {
				return res, errors.Join(err, pr.stop())
			}
		}
		if o.Keep && res.Pass {
			res.VM = &VM{Name: o.Name, Pid: pr.cmd.Process.Pid, ConsoleSocket: p.serialSock,
				ConsoleLog: p.consoleLog, HostPort: res.HostPort, stop: pr.stop}
			return res, nil
		}
		return res, pr.stop()
	}
	if len(buses) > 1 {
		var rs []string
		for _, a := range res.Attempts {
			rs = append(rs, fmt.Sprintf("%s bus: %s", a.Bus, a.Reason))
		}
		res.Reason = strings.Join(rs, "\n")
	}
	return res, nil
}

func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 16)
	}
	return hex.EncodeToString(b)
}

// freePort picks a free TCP port on 127.0.0.1. Another program could take
// it before qemu binds it; qemu then fails to start and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("boot: free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("boot: free port: %w", err)
	}
	return port, nil
}

// proc is a started qemu.
type proc struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	done    chan struct{}
	waitErr error
	stderr  *tailBuffer
	tmp     string
	plan    *plan
	once    sync.Once
	stopErr error
}

// maxSocketPath is the longest unix socket path Linux accepts.
const maxSocketPath = 107

// start makes the temporary directory (overlays, UEFI variables, console
// socket) and starts qemu in its own process group at low priority. On
// error nothing is left behind.
func start(ctx context.Context, o Options, p *plan, disks []string, ovmfVars string) (pr *proc, err error) {
	tmp, err := os.MkdirTemp(o.TempDir, "lifeboat-boot-")
	if err != nil {
		return nil, fmt.Errorf("boot: temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := os.RemoveAll(tmp); rerr != nil {
				err = errors.Join(err, fmt.Errorf("boot: remove %s: %w", tmp, rerr))
			}
		}
	}()
	for i, d := range disks {
		ov := filepath.Join(tmp, fmt.Sprintf("disk%d.qcow2", i))
		cmd := exec.CommandContext(ctx, o.QEMUImg, "create", "-q", "-f", "qcow2", "-b", d, "-F", "raw", ov)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("boot: overlay of %s: %w: %s", d, err, strings.TrimSpace(string(out)))
		}
		p.overlays = append(p.overlays, ov)
	}
	if p.firmware == FirmwareOVMF {
		p.ovmfVars = filepath.Join(tmp, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, p.ovmfVars); err != nil {
			return nil, err
		}
	}
	p.serialSock = filepath.Join(tmp, "serial.sock")
	if len(p.serialSock) > maxSocketPath {
		return nil, api.Errorf("use a shorter temporary directory", "boot: console socket path %s is too long", p.serialSock)
	}
	if p.net == NetIsolated {
		if p.hostPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	// The console log is new for each boot; qemu appends otherwise.
	if err := os.Remove(p.consoleLog); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("boot: console log: %w", err)
	}
	// nice and ionice exec qemu: one process, every thread of it at the
	// lower priority from its first instruction.
	args := append([]string{"-n", "10", "ionice", "-c", "2", "-n", "7", o.QEMU}, qemuArgs(p)...)
	vmCtx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(vmCtx, "nice", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !p.keep {
		// If this process dies without cleaning up, the kernel kills
		// qemu.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("boot: start qemu: %w", err)
	}
	pr = &proc{cmd: cmd, cancel: cancel, done: make(chan struct{}), stderr: stderr, tmp: tmp, plan: p}
	go func() {
		pr.waitErr = cmd.Wait()
		close(pr.done)
	}()
	return pr, nil
}

// stop kills qemu's process group, waits for it and removes the temporary
// directory; it is safe to call more than once.
func (pr *proc) stop() error {
	pr.once.Do(func() {
		pr.cancel()
		<-pr.done
		if err := os.RemoveAll(pr.tmp); err != nil {
			pr.stopErr = fmt.Errorf("boot: remove %s: %w", pr.tmp, err)
		}
	})
	return pr.stopErr
}

// pollInterval is how often the console log is read.
const pollInterval = 200 * time.Millisecond

// waitReady waits until the console matches o.Ready, matches o.Fail, qemu
// exits or o.Timeout passes. err is ctx's error only.
func (pr *proc) waitReady(ctx context.Context, o Options) (ready bool, reason string, took time.Duration, err error) {
	begin := time.Now()
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, "cancelled", time.Since(begin), ctx.Err()
		case <-pr.done:
			return false, exitReason(pr.waitErr, pr.stderr.String(), readConsole(pr.plan.consoleLog), o.Fail), time.Since(begin), nil
		case <-timer.C:
			text := readConsole(pr.plan.consoleLog)
			return false, fmt.Sprintf("the console did not match %q within %s; last console lines:\n%s",
				o.Ready.String(), o.Timeout, lastLines(text, 15)), time.Since(begin), nil
		case <-tick.C:
			text := ansi.ReplaceAllString(readConsole(pr.plan.consoleLog), "")
			if m := o.Fail.FindString(text); m != "" {
				return false, fmt.Sprintf("the console shows a failure: %q; last console lines:\n%s",
					strings.TrimSpace(m), lastLines(text, 15)), time.Since(begin), nil
			}
			if o.Ready.MatchString(text) {
				return true, "", time.Since(begin), nil
			}
		}
	}
}

// exitReason says why a qemu that exited before ready did: with
// -no-reboot, a guest that resets (a triple fault, a kernel that cannot
// start, a panic with panic=N) or powers off ends qemu with status 0.
func exitReason(waitErr error, stderr, console string, fail *regexp.Regexp) string {
	var b strings.Builder
	if m := fail.FindString(ansi.ReplaceAllString(console, "")); m != "" {
		fmt.Fprintf(&b, "the console shows a failure: %q; ", strings.TrimSpace(m))
	}
	if waitErr == nil {
		b.WriteString("the guest reset or powered off before it was ready (qemu runs with -no-reboot and exited 0)")
	} else {
		fmt.Fprintf(&b, "qemu exited before the guest was ready: %v", waitErr)
	}
	if s := strings.TrimSpace(stderr); s != "" {
		fmt.Fprintf(&b, "; qemu said: %s", s)
	}
	fmt.Fprintf(&b, "; last console lines:\n%s", lastLines(console, 15))
	return b.String()
}

// maxConsole is how much of the console log's end is matched.
const maxConsole = 1 << 20

func readConsole(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxConsole {
		if _, err := f.Seek(st.Size()-maxConsole, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// runVerify runs o.Verify at low priority in its own process group and
// records its outcome in res; err is ctx's error only.
func runVerify(ctx context.Context, o Options, res *Result) error {
	vctx, cancel := context.WithTimeout(ctx, o.VerifyTimeout)
	defer cancel()
	cmd := exec.CommandContext(vctx, "nice", "-n", "10", "ionice", "-c", "2", "-n", "7", o.Verify)
	port := ""
	if res.HostPort != 0 {
		port = strconv.Itoa(res.HostPort)
	}
	cmd.Env = append(os.Environ(),
		"LIFEBOAT_CONSOLE_LOG="+res.ConsoleLog,
		"LIFEBOAT_GUEST_HOST=127.0.0.1",
		"LIFEBOAT_GUEST_PORT="+port,
		"LIFEBOAT_POINT="+o.Point,
		"LIFEBOAT_VM_NAME="+res.Name,
		"LIFEBOAT_FIRMWARE="+string(res.Firmware),
		"LIFEBOAT_BUS="+string(res.Bus),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	begin := time.Now()
	err := cmd.Run()
	res.VerifyTook = time.Since(begin)
	res.VerifyOutput = strings.TrimSpace(out.String())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.VerifyExit = 0
		return nil
	case vctx.Err() != nil:
		res.Reason = fmt.Sprintf("verify %s did not finish within %s; its output:\n%s", o.Verify, o.VerifyTimeout, res.VerifyOutput)
	case errors.As(err, &ee):
		res.VerifyExit = ee.ExitCode()
		res.Reason = fmt.Sprintf("verify %s exited %d; its output:\n%s", o.Verify, res.VerifyExit, res.VerifyOutput)
	default:
		res.Reason = fmt.Sprintf("verify %s did not run: %v", o.Verify, err)
	}
	res.Pass = false
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	return nil
}

// tailBuffer is an io.Writer keeping the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
