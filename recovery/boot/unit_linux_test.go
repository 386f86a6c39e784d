package boot

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/recovery/recoverytest"
)

// mbrImage writes a 64 MiB sparse image whose MBR holds one partition of
// each type, 16 MiB each from 1 MiB.
func mbrImage(t *testing.T, types ...byte) string {
	t.Helper()
	mbr := make([]byte, 512)
	for i, typ := range types {
		e := mbr[0x1be+16*i:]
		e[4] = typ
		binary.LittleEndian.PutUint32(e[8:], uint32(2048+i*32768))
		binary.LittleEndian.PutUint32(e[12:], 32768)
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	path := filepath.Join(t.TempDir(), "mbr.img")
	if err := os.WriteFile(path, mbr, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDetectFirmware(t *testing.T) {
	const (
		esp      = "U"
		linux    = "L"
		biosBoot = "21686148-6449-6E6F-744E-656564454649"
	)
	gpt := func(t *testing.T, types ...string) string {
		var parts []recoverytest.Part
		for _, typ := range types {
			parts = append(parts, recoverytest.Part{SizeMiB: 16, Type: typ})
		}
		path, _ := recoverytest.PartitionedImage(t, parts...)
		return path
	}
	for _, c := range []struct {
		name  string
		image func(t *testing.T) string
		want  Firmware
	}{
		{"mbr", func(t *testing.T) string { return mbrImage(t, 0x83) }, FirmwareSeaBIOS},
		{"mbr-efi-type", func(t *testing.T) string { return mbrImage(t, 0xef, 0x83) }, FirmwareSeaBIOS},
		{"gpt-esp", func(t *testing.T) string { return gpt(t, esp, linux) }, FirmwareOVMF},
		{"gpt-bios-boot", func(t *testing.T) string { return gpt(t, biosBoot, linux) }, FirmwareSeaBIOS},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DetectFirmware(c.image(t))
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
