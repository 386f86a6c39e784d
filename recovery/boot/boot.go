package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery"
)

// Firmware is the guest's firmware.
type Firmware string

// Firmwares.
const (
	FirmwareAuto    Firmware = ""        // from the first disk's partition table
	FirmwareSeaBIOS Firmware = "seabios" // BIOS, for MBR disks
	FirmwareOVMF    Firmware = "ovmf"    // UEFI, for GPT disks with an EFI system partition
)

// Bus is how the disks are attached.
type Bus string

// Buses.
const (
	// BusAuto boots on virtio-blk and, when the guest does not reach
	// ready there, once more on AHCI (SATA): a guest without a virtio
	// driver cannot mount its root, so it panics, reboots or hangs.
	BusAuto   Bus = ""
	BusVirtio Bus = "virtio"
	BusSATA   Bus = "sata" // AHCI, at most 6 disks
	BusIDE    Bus = "ide"  // the PIIX IDE controller, at most 4 disks
)

// Accel is the accelerator.
type Accel string

// Accelerators.
const (
	AccelAuto Accel = "" // KVM when /dev/kvm is usable, else TCG
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// Net is the guest's network.
type Net string

// Networks.
const (
	// NetNone gives the guest no network card at all.
	NetNone Net = ""
	// NetIsolated gives it a user-mode network with restrict=on (no route
	// out, not even to the host) and one TCP port forwarded from
	// 127.0.0.1 on the host to Options.GuestPort.
	NetIsolated Net = "isolated"
)

// DefaultReady is the console pattern of a ready guest when Options.Ready
// is nil: a login prompt.
var DefaultReady = regexp.MustCompile(`login:`)

// DefaultFail is the console pattern that ends a boot as failed when
// Options.Fail is nil: a kernel panic, a kernel that cannot decompress, or
// GRUB failing to load the kernel.
var DefaultFail = regexp.MustCompile(`Kernel panic - not syncing.*|.*-- System halted|error: you need to load the kernel first\.?|error: invalid magic number\.?`)

// Priority is how qemu and the verify script run, so that replication on
// the same host does not fall behind (docs/boot.md).
const Priority = "nice 10, ionice best-effort 7"

// Defaults.
const (
	DefaultTimeoutTCG    = 10 * time.Minute
	DefaultTimeoutKVM    = 5 * time.Minute
	DefaultVerifyTimeout = 10 * time.Minute
	DefaultGuestPort     = 22
	DefaultMemoryMB      = 1024
)

// ErrNotSupported is returned by Boot where booting is not implemented.
var ErrNotSupported = errors.New("boot: not supported on this system")

// Options of Boot.
type Options struct {
	// Disks are the raw images, the boot disk first. They are never
	// written: the guest writes qcow2 overlays.
	Disks []string
	// Firmware, Bus and Accel are chosen automatically when empty.
	Firmware Firmware
	Bus      Bus
	Accel    Accel
	// Net is NetNone (default) or NetIsolated.
	Net Net
	// GuestPort is the guest's TCP port forwarded with NetIsolated;
	// DefaultGuestPort when 0.
	GuestPort int
	// Ready is the console pattern of a ready guest (DefaultReady when
	// nil); Fail ends the boot as failed (DefaultFail when nil).
	Ready, Fail *regexp.Regexp
	// Timeout from qemu's start to ready; DefaultTimeoutTCG or
	// DefaultTimeoutKVM when 0. With BusAuto, each bus gets its own.
	Timeout time.Duration
	// Verify is a program run on the host after ready, with the console
	// log, the forwarded port and the point in its environment (see
	// Boot); its exit status decides. VerifyTimeout bounds it
	// (DefaultVerifyTimeout when 0).
	Verify        string
	VerifyTimeout time.Duration
	// Point is the recovery point's id, passed to Verify.
	Point string
	// Keep leaves a passing VM running: Result.VM reaches and stops it.
	Keep bool
	// MemoryMB and CPUs of the guest; DefaultMemoryMB and 1 vCPU under
	// TCG (2 under KVM) when 0.
	MemoryMB, CPUs int
	// LogDir receives the console log (console.log, console-sata.log for
	// a fallback attempt), which Boot keeps; a new directory under
	// TempDir when empty.
	LogDir string
	// TempDir is where the temporary directory of the overlays, the
	// UEFI variables and the sockets is made; os.TempDir() when empty.
	TempDir string
	// Name is qemu's -name (it finds the process); lifeboat-<random>
	// when empty.
	Name string
	// QEMU and QEMUImg are the programs; qemu-system-x86_64 and qemu-img
	// when empty.
	QEMU, QEMUImg string
}

// Result of Boot.
type Result struct {
	// Pass is true when the guest reached ready and Verify (if any)
	// exited 0. Reason says why not.
	Pass   bool
	Reason string
	// Name is qemu's -name.
	Name string
	// What was used: the firmware, the bus that reached ready (or the
	// last one tried), the accelerator, the priority.
	Firmware Firmware
	Bus      Bus
	Accel    Accel
	Priority string
	// ConsoleLog is the serial console log of the last attempt; kept.
	ConsoleLog string
	// HostPort is the port on 127.0.0.1 forwarded to GuestPort with
	// NetIsolated, else 0.
	HostPort, GuestPort int
	// BootToReady is from qemu's start to ready (of the last attempt);
	// VerifyTook is Verify's run time.
	BootToReady, VerifyTook time.Duration
	// VerifyExit is Verify's exit status (-1 when it did not run or was
	// killed); VerifyOutput is the tail of its output.
	VerifyExit   int
	VerifyOutput string
	// Attempts are the boots made, one per bus tried.
	Attempts []Attempt
	// VM is the running VM when Options.Keep and Pass.
	VM *VM
}

// Attempt is one boot on one bus.
type Attempt struct {
	Bus        Bus
	Ready      bool
	Reason     string
	Took       time.Duration
	ConsoleLog string
}

// plan is what Boot decided before starting qemu.
type plan struct {
	name       string
	firmware   Firmware
	ovmfCode   string
	ovmfVars   string // the temporary copy
	accel      Accel
	bus        Bus
	overlays   []string
	memoryMB   int
	cpus       int
	consoleLog string
	serialSock string
	net        Net
	hostPort   int
	guestPort  int
	keep       bool
}

// DetectFirmware reads the partition table of a disk image: SeaBIOS for an
// MBR, OVMF for a GPT with an EFI system partition, SeaBIOS for a GPT
// without one (GRUB on a BIOS boot partition).
func DetectFirmware(image string) (Firmware, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", fmt.Errorf("boot: firmware: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("boot: firmware: %w", err)
	}
	t, err := recovery.ReadTable(f, st.Size())
	if err != nil {
		if errors.Is(err, recovery.ErrNoTable) {
			return "", api.WithHint(fmt.Errorf("boot: firmware: %s: %w", image, err),
				"the first disk must be the boot disk with an MBR or GPT; or set the firmware explicitly")
		}
		return "", fmt.Errorf("boot: firmware: %s: %w", image, err)
	}
	if t.Scheme == recovery.SchemeGPT {
		for _, p := range t.Partitions {
			if p.TypeName == "efi" {
				return FirmwareOVMF, nil
			}
		}
	}
	return FirmwareSeaBIOS, nil
}

// ovmfPairs are Debian's OVMF code and variable files (package ovmf), the
// 4 MiB build first; the Secure Boot builds need SMM on q35, not used.
var ovmfPairs = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
}

// findOVMF returns the OVMF code and variables template.
func findOVMF() (code, vars string, err error) {
	for _, p := range ovmfPairs {
		if fileExists(p[0]) && fileExists(p[1]) {
			return p[0], p[1], nil
		}
	}
	return "", "", api.Errorf("install Debian's ovmf (scripts/install-deps.sh)",
		"boot: no OVMF firmware in /usr/share/OVMF")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// maxDisks per bus.
func maxDisks(b Bus) int {
	switch b {
	case BusSATA:
		return 6
	case BusIDE:
		return 4
	}
	return 32
}

// qemuArgs is qemu's command line for p, without the program.
func qemuArgs(p *plan) []string {
	a := []string{
		"-name", p.name,
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-machine", "pc",
		"-m", strconv.Itoa(p.memoryMB),
		"-smp", strconv.Itoa(p.cpus),
		// A guest that reboots (a panic with panic=N, a triple fault)
		// ends qemu: a failure the runner sees at once.
		"-no-reboot",
	}
	if p.accel == AccelKVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg")
	}
	if p.firmware == FirmwareOVMF {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+p.ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+p.ovmfVars)
	}
	if p.bus == BusSATA {
		a = append(a, "-device", "ahci,id=ahci0")
	}
	for i, ov := range p.overlays {
		id := fmt.Sprintf("disk%d", i)
		// cache=unsafe: the overlay is thrown away, its durability
		// does not matter; the backing image is opened read-only.
		a = append(a, "-drive", "file="+ov+",format=qcow2,if=none,cache=unsafe,id="+id)
		dev := ""
		switch p.bus {
		case BusSATA:
			dev = fmt.Sprintf("ide-hd,drive=%s,bus=ahci0.%d", id, i)
		case BusIDE:
			dev = fmt.Sprintf("ide-hd,drive=%s,bus=ide.%d,unit=%d", id, i/2, i%2)
		default:
			dev = "virtio-blk-pci,drive=" + id
		}
		if i == 0 {
			dev += ",bootindex=1"
		}
		a = append(a, "-device", dev)
	}
	if p.net == NetIsolated {
		nic := "virtio-net-pci"
		if p.bus != BusVirtio {
			nic = "e1000"
		}
		a = append(a,
			"-netdev", fmt.Sprintf("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:%d", p.hostPort, p.guestPort),
			"-device", nic+",netdev=net0")
	} else {
		a = append(a, "-nic", "none")
	}
	// The console goes to a socket (to reach a kept VM) and, through
	// logfile, to the log whether or not anyone is connected.
	a = append(a,
		"-chardev", "socket,id=serial0,path="+p.serialSock+",server=on,wait=off,logfile="+p.consoleLog+",logappend=off",
		"-serial", "chardev:serial0",
		"-monitor", "none")
	return a
}

// lastLines returns the last n non-empty lines of a console log, with
// carriage returns and escape sequences removed.
func lastLines(text string, n int) string {
	text = ansi.ReplaceAllString(text, "")
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append(out, l)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return strings.Join(out, "\n")
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// defaultLogDir makes a kept directory for the console log.
func defaultLogDir(tempDir string) (string, error) {
	d, err := os.MkdirTemp(tempDir, "lifeboat-boot-log-")
	if err != nil {
		return "", fmt.Errorf("boot: log directory: %w", err)
	}
	return d, nil
}

// consoleLogPath names the log of an attempt on bus b.
func consoleLogPath(dir string, first bool, b Bus) string {
	if first {
		return filepath.Join(dir, "console.log")
	}
	return filepath.Join(dir, "console-"+string(b)+".log")
}

// VM is a guest left running by Options.Keep.
type VM struct {
	// Name is qemu's -name, Pid its process (the leader of its group).
	Name string
	Pid  int
	// ConsoleSocket is a unix socket of the serial console: connect
	// with `socat - UNIX-CONNECT:PATH` (or `nc -U PATH`); the console
	// is also appended to ConsoleLog.
	ConsoleSocket, ConsoleLog string
	// HostPort is the forwarded port on 127.0.0.1 (0 without network).
	HostPort int
	stop     func() error
}

// Stop kills the VM's process group and removes its temporary files.
func (v *VM) Stop() error {
	if v == nil || v.stop == nil {
		return nil
	}
	return v.stop()
}

// Tail returns the last n non-empty lines of a console log, without
// carriage returns and terminal escape sequences.
func Tail(text string, n int) string { return lastLines(text, n) }
