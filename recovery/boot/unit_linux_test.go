package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// sfdiskImage makes a sparse 64 MiB image with the partition table script
// (sfdisk's input) describes.
func sfdiskImage(t *testing.T, script string) string {
	t.Helper()
	testenv.RequireCommand(t, "sfdisk")
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return path
}

func TestDetectFirmware(t *testing.T) {
	for _, c := range []struct {
		name, script string
		want         Firmware
	}{
		{"mbr", "label: dos\nstart=2048, type=83, bootable\n", FirmwareSeaBIOS},
		{"mbr-efi-type", "label: dos\nstart=2048, size=16M, type=ef\nstart=34816, type=83\n", FirmwareSeaBIOS},
		{"gpt-esp", "label: gpt\nstart=2048, size=16M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=34816, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", FirmwareOVMF},
		{"gpt-bios-boot", "label: gpt\nstart=2048, size=1M, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", FirmwareSeaBIOS},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DetectFirmware(sfdiskImage(t, c.script))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("firmware %q, want %q", got, c.want)
			}
		})
	}
	t.Run("no-table", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "blank.img")
		if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := DetectFirmware(path); err == nil || !strings.Contains(err.Error(), "no partition table") {
			t.Fatalf("err %v, want no partition table", err)
		}
	})
}

func basePlan() *plan {
	return &plan{
		name: "lifeboat-x", firmware: FirmwareSeaBIOS, accel: AccelTCG, bus: BusVirtio,
		overlays: []string{"/t/disk0.qcow2", "/t/disk1.qcow2"}, memoryMB: 512, cpus: 1,
		consoleLog: "/l/console.log", serialSock: "/t/serial.sock", guestPort: 22,
	}
}

// joined is the command line as one string, arguments separated by spaces.
func joined(p *plan) string { return " " + strings.Join(qemuArgs(p), " ") + " " }

func TestQemuArgs(t *testing.T) {
	for _, c := range []struct {
		name     string
		edit     func(*plan)
		want     []string
		dontWant []string
	}{
		{"seabios-virtio-tcg", func(*plan) {}, []string{
			" -name lifeboat-x ", " -accel tcg ", " -nic none ", " -no-reboot ", " -nodefaults ",
			" -drive file=/t/disk0.qcow2,format=qcow2,if=none,cache=unsafe,id=disk0 -device virtio-blk-pci,drive=disk0,bootindex=1 ",
			" -drive file=/t/disk1.qcow2,format=qcow2,if=none,cache=unsafe,id=disk1 -device virtio-blk-pci,drive=disk1 ",
			" -chardev socket,id=serial0,path=/t/serial.sock,server=on,wait=off,logfile=/l/console.log,logappend=off -serial chardev:serial0 ",
		}, []string{"pflash", "-netdev", "kvm", "hostfwd"}},
		{"ovmf-kvm", func(p *plan) {
			p.firmware, p.accel, p.ovmfCode, p.ovmfVars = FirmwareOVMF, AccelKVM, "/usr/share/OVMF/OVMF_CODE_4M.fd", "/t/OVMF_VARS.fd"
		}, []string{
			" -accel kvm -cpu host ",
			" -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd ",
			" -drive if=pflash,format=raw,unit=1,file=/t/OVMF_VARS.fd ",
		}, []string{"tcg"}},
		{"sata", func(p *plan) { p.bus = BusSATA }, []string{
			" -device ahci,id=ahci0 ", " -device ide-hd,drive=disk0,bus=ahci0.0,bootindex=1 ", " -device ide-hd,drive=disk1,bus=ahci0.1 ",
		}, []string{"virtio"}},
		{"ide", func(p *plan) { p.bus = BusIDE }, []string{
			" -device ide-hd,drive=disk0,bus=ide.0,unit=0,bootindex=1 ", " -device ide-hd,drive=disk1,bus=ide.0,unit=1 ",
		}, []string{"virtio", "ahci"}},
		{"isolated-virtio", func(p *plan) { p.net, p.hostPort, p.guestPort = NetIsolated, 34567, 80 }, []string{
			" -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:34567-:80 -device virtio-net-pci,netdev=net0 ",
		}, []string{"-nic none"}},
		{"isolated-sata", func(p *plan) { p.net, p.bus, p.hostPort = NetIsolated, BusSATA, 34567 }, []string{
			" -device e1000,netdev=net0 ",
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := basePlan()
			c.edit(p)
			got := joined(p)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("command line lacks %q:\n%s", w, got)
				}
			}
			for _, w := range c.dontWant {
				if strings.Contains(got, w) {
					t.Errorf("command line has %q:\n%s", w, got)
				}
			}
			// Exactly one forwarded port, never a route out.
			if n := strings.Count(got, "hostfwd="); n > 1 {
				t.Errorf("%d forwarded ports", n)
			}
			if p.net == NetIsolated && strings.Count(got, "restrict=on") != 1 {
				t.Errorf("isolated network without restrict=on:\n%s", got)
			}
		})
	}
}

func TestDefaultPatterns(t *testing.T) {
	for _, s := range []string{"lifeboat-guest login: ", "Debian GNU/Linux 12 host ttyS0\n\nhost login:"} {
		if !DefaultReady.MatchString(s) {
			t.Errorf("DefaultReady does not match %q", s)
		}
	}
	for _, s := range []string{
		"[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
		"Decompressing Linux... \n\ncrc error\n\n -- System halted",
		"error: invalid magic number.",
	} {
		if !DefaultFail.MatchString(s) {
			t.Errorf("DefaultFail does not match %q", s)
		}
	}
	if DefaultFail.MatchString("lifeboat-guest login: ") {
		t.Error("DefaultFail matches a login prompt")
	}
}

func TestLastLines(t *testing.T) {
	text := "\x1b[H\x1b[Ja\r\n\r\nb\r\nc\n"
	if got := lastLines(text, 2); got != "b\nc" {
		t.Fatalf("lastLines %q", got)
	}
	if !regexp.MustCompile(`^a\nb\nc$`).MatchString(lastLines(text, 10)) {
		t.Fatalf("lastLines all %q", lastLines(text, 10))
	}
}
