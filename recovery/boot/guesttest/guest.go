package guesttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Marker is the line the guest's init prints on the serial console once the
// root is mounted and running.
const Marker = "LIFEBOAT-GUEST-UP"

// CheckPrefix starts the console line with the sha256 of /lifeboat/check:
// "lifeboat-check: <hex>  /lifeboat/check".
const CheckPrefix = "lifeboat-check: "

// CheckPath is the file on the guest's root whose sha256 the init prints.
const CheckPath = "/lifeboat/check"

// HTTPPort is the guest port on which the init serves /lifeboat over HTTP
// (busybox httpd) when the guest has a network card.
const HTTPPort = 80

// RootLabel is the ext4 label of the guest's root partition.
const RootLabel = "lifeboat-root"

// DefaultDebCache is where Build keeps the downloaded kernel packages
// between runs when Options.DebCache is empty.
const DefaultDebCache = "/var/cache/lifeboat-test/debs"

// modules the initramfs loads, with their dependencies, in this order: the
// disk buses the boot runner may use (virtio-blk, AHCI, IDE), the root's
// filesystem and the network card of the isolated network.
var modules = []string{"virtio_pci", "virtio_blk", "ahci", "ata_piix", "sd_mod", "ext4", "virtio_net", "e1000"}

// virtioDisk are the modules left out by Options.NoVirtioDisk.
var virtioDisk = map[string]bool{"virtio_blk": true}

// Options of Build.
type Options struct {
	// Dir is where the image is written (guest.img); required.
	Dir string
	// Size of the disk in bytes; 256 MiB when 0.
	Size int64
	// Files to put on the root, by absolute path in the guest ("/etc/x")
	// to content. CheckPath gets "lifeboat test guest\n" unless given.
	Files map[string][]byte
	// DebCache is where the kernel .debs are cached, and the kernel
	// unpacked from them (unpacked/); DefaultDebCache when empty.
	DebCache string
	// UEFI makes a GPT disk for OVMF instead of an MBR disk with GRUB:
	// partition 1 an EFI system partition (FAT) holding the kernel, its
	// EFI stub booted by the UEFI shell's startup.nsh with the kernel
	// command line, and the initramfs; partition 2 the ext4 root.
	UEFI bool
	// NoVirtioDisk leaves virtio_blk out of the initramfs: a guest that
	// boots only on AHCI or IDE, like one without virtio drivers.
	NoVirtioDisk bool
	// Logf, when set, receives progress lines (t.Logf).
	Logf func(format string, args ...any)
}

// Guest is a built guest disk.
type Guest struct {
	// Image is the raw disk image (MBR, GRUB, ext4 root in partition 1).
	Image string
	// Kernel is the kernel file copied to /boot/vmlinuz on the root; its
	// content locates the kernel's blocks for DamageKernel.
	Kernel string
	// KernelVersion is the unpacked kernel's release (6.1.0-57-amd64).
	KernelVersion string
	// PartStart is the byte offset of the root partition in Image.
	PartStart int64
	// Took is how long Build took.
	Took time.Duration
}

// Layout: the first partition at 1 MiB; with UEFI, a 32 MiB EFI system
// partition there and the root after it.
const (
	partStart = 1 << 20
	espSize   = 32 << 20
)

// Build builds the guest disk into o.Dir. It needs the packages of
// scripts/install-deps.sh and write access to o.DebCache.
func Build(o Options) (g *Guest, err error) {
	start := time.Now()
	if o.Dir == "" {
		return nil, errors.New("guest: no directory")
	}
	if o.Size == 0 {
		o.Size = 256 << 20
	}
	if o.DebCache == "" {
		o.DebCache = DefaultDebCache
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.DebCache, 0o755); err != nil {
		return nil, fmt.Errorf("guest: deb cache: %w", err)
	}
	kdir, ver, err := unpackKernel(o.DebCache)
	if err != nil {
		return nil, err
	}
	logf("guest: kernel %s unpacked (%s)", ver, time.Since(start).Round(time.Millisecond))
	initrd := filepath.Join(o.Dir, "initrd.img")
	if err := buildInitramfs(kdir, ver, filepath.Join(o.Dir, "initramfs"), initrd, o.NoVirtioDisk); err != nil {
		return nil, err
	}
	logf("guest: initramfs built (%s)", time.Since(start).Round(time.Millisecond))
	g = &Guest{
		Image:         filepath.Join(o.Dir, "guest.img"),
		Kernel:        filepath.Join(kdir, "boot", "vmlinuz-"+ver),
		KernelVersion: ver,
		PartStart:     partStart,
	}
	if o.UEFI {
		g.PartStart = partStart + espSize
	}
	if err := buildDisk(o, g, initrd); err != nil {
		return nil, err
	}
	g.Took = time.Since(start)
	logf("guest: disk %s built in %s", g.Image, g.Took.Round(time.Millisecond))
	return g, nil
}

func run(dir string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(tail(out.String(), 800)))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// download fetches pkg's .deb into cache unless a version of it is there,
// running apt-get update once if apt does not know it.
func download(cache, pkg string) (string, error) {
	if deb := cached(cache, pkg); deb != "" {
		return deb, nil
	}
	if _, err := run(cache, "apt-get", "download", pkg); err != nil {
		if _, uerr := run(cache, "apt-get", "update", "-qq"); uerr != nil {
			return "", fmt.Errorf("guest: apt-get update: %w", uerr)
		}
		if _, err := run(cache, "apt-get", "download", pkg); err != nil {
			return "", fmt.Errorf("guest: download: %w", err)
		}
	}
	if deb := cached(cache, pkg); deb != "" {
		return deb, nil
	}
	return "", fmt.Errorf("guest: apt-get download %s left no .deb in %s", pkg, cache)
}

func cached(cache, pkg string) string {
	m, _ := filepath.Glob(filepath.Join(cache, pkg+"_*_amd64.deb"))
	sort.Strings(m)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// unpackKernel downloads linux-image-amd64 and the linux-image-<version>
// package it depends on, and unpacks the latter (then depmod) into
// cache/unpacked/<deb name> once: later builds reuse the tree. It returns
// the tree and the kernel's release.
func unpackKernel(cache string) (kdir, ver string, err error) {
	meta, err := download(cache, "linux-image-amd64")
	if err != nil {
		return "", "", err
	}
	dep, err := run("", "dpkg-deb", "-f", meta, "Depends")
	if err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	pkg := ""
	for _, d := range strings.Split(dep, ",") {
		f := strings.Fields(d)
		if len(f) > 0 && strings.HasPrefix(f[0], "linux-image-") {
			pkg = f[0]
			break
		}
	}
	if pkg == "" {
		return "", "", fmt.Errorf("guest: linux-image-amd64 depends on no kernel package: %q", dep)
	}
	deb, err := download(cache, pkg)
	if err != nil {
		return "", "", err
	}
	ver = strings.TrimPrefix(pkg, "linux-image-")
	kdir = filepath.Join(cache, "unpacked", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	done := filepath.Join(kdir, ".unpacked")
	if _, err := os.Stat(done); err == nil {
		return kdir, ver, nil
	}
	if err := os.MkdirAll(filepath.Dir(kdir), 0o755); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	// Unpack beside the final name and rename: a build that dies half way
	// leaves no tree that looks complete.
	tmp, err := os.MkdirTemp(filepath.Dir(kdir), "tmp-")
	if err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run("", "dpkg-deb", "-x", deb, tmp); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "boot", "vmlinuz-"+ver)); err != nil {
		return "", "", fmt.Errorf("guest: %s has no kernel: %w", deb, err)
	}
	if _, err := run("", "depmod", "-b", tmp, ver); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".unpacked"), nil, 0o644); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	if err := os.RemoveAll(kdir); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	if err := os.Rename(tmp, kdir); err != nil {
		return "", "", fmt.Errorf("guest: %w", err)
	}
	return kdir, ver, nil
}

// moduleFiles lists the .ko files to insmod, dependencies first.
func moduleFiles(kdir, ver string, noVirtioDisk bool) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, m := range modules {
		if noVirtioDisk && virtioDisk[m] {
			continue
		}
		out, err := run("", "modprobe", "-d", kdir, "-S", ver, "--show-depends", m)
		if err != nil {
			return nil, fmt.Errorf("guest: %w", err)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" || seen[f[1]] {
				continue
			}
			seen[f[1]] = true
			files = append(files, f[1])
		}
	}
	return files, nil
}

// initScript is the initramfs's /init: load the modules, find the root by
// its label, mount it and switch_root into its /sbin/init. Without a root
// it exits, so the kernel panics (panic=-1 reboots, which ends qemu under
// -no-reboot), as a real initramfs that cannot find its root fails.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod /modules/$m 2>/dev/null; done
root=""
i=0
while [ $i -lt 100 ]; do
	root=$(findfs LABEL=` + RootLabel + ` 2>/dev/null) && break
	sleep 0.1
	i=$((i+1))
done
if [ -z "$root" ]; then
	echo "lifeboat-initramfs: no root partition labelled ` + RootLabel + `; block devices:" $(ls /sys/class/block)
	exit 1
fi
mount -t ext4 "$root" /newroot || { echo "lifeboat-initramfs: cannot mount $root"; exit 1; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
`

// rootInit is the root's /sbin/init: print the marker and the checksum,
// serve /lifeboat on the network card if there is one, then a login prompt
// on the serial console, forever.
const rootInit = `#!/bin/busybox sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
hostname lifeboat-guest
echo "` + Marker + `"
echo "` + CheckPrefix + `$(sha256sum ` + CheckPath + `)"
if [ -e /sys/class/net/eth0 ]; then
	ifconfig lo 127.0.0.1 up
	ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
	route add default gw 10.0.2.2
	httpd -p ` + "80" + ` -h /lifeboat
	echo "lifeboat-guest: httpd on eth0 port 80"
fi
if [ -x /lifeboat/run ]; then /lifeboat/run; fi
while true; do
	getty -L 115200 ttyS0 vt100
done
`

func buildInitramfs(kdir, ver, dir, out string, noVirtioDisk bool) error {
	files, err := moduleFiles(kdir, ver, noVirtioDisk)
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "modules"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("guest: initramfs: %w", err)
		}
	}
	if err := copyFile("/bin/busybox", filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	var list []string
	for _, f := range files {
		base := filepath.Base(f)
		if err := copyFile(f, filepath.Join(dir, "modules", base), 0o644); err != nil {
			return err
		}
		list = append(list, base)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.list"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("guest: initramfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(initScript), 0o755); err != nil {
		return fmt.Errorf("guest: initramfs: %w", err)
	}
	// cpio reads the file list from find; gzip is what every kernel
	// config enables.
	if _, err := run(dir, "sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1 > "+shellQuote(out)); err != nil {
		return fmt.Errorf("guest: initramfs: %w", err)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	return nil
}

const grubCfg = `set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry lifeboat-guest {
	linux /boot/vmlinuz root=LABEL=` + RootLabel + ` console=ttyS0,115200 quiet panic=-1
	initrd /boot/initrd.img
}
`

// buildDisk writes the image without a loop device or a mount: sfdisk
// writes the MBR, mkfs.ext4 -d makes the root partition from a staging
// directory at the partition's offset, and installGRUB embeds GRUB's boot
// sector and core image into the image file itself.
//
// grub-install is not used: it finds the drive of --boot-directory by
// probing the host's devices, and on this project's kernels, which parse no
// partition table (a loop device's partitions come from partx), it fails
// with "cannot find a GRUB drive for /dev/loopNp1"; grub-bios-setup guesses
// the root from its -d directory the same way. Writing the image file
// directly also means the host's disks and its /boot are never in reach.
func buildDisk(o Options, g *Guest, initrd string) error {
	img := g.Image
	f, err := os.Create(img)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := f.Truncate(o.Size); err != nil {
		f.Close()
		return fmt.Errorf("guest: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	table := fmt.Sprintf("label: dos\nstart=%d, type=83, bootable\n", partStart/512)
	if o.UEFI {
		table = fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=U\nstart=%d, type=L\n",
			partStart/512, espSize/512, g.PartStart/512)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("guest: sfdisk: %w: %s", err, strings.TrimSpace(string(out)))
	}
	root := filepath.Join(o.Dir, "root")
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if err := fillRoot(o, g, root, initrd); err != nil {
		return err
	}
	core := filepath.Join(o.Dir, "core.img")
	if !o.UEFI {
		if err := prepareGRUB(root, core); err != nil {
			return err
		}
	}
	// GPT keeps a backup table in the last 33 sectors.
	size := fmt.Sprintf("%dk", (o.Size-g.PartStart-(1<<20))/1024)
	if _, err := run("", "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", RootLabel, "-E", fmt.Sprintf("offset=%d", g.PartStart),
		"-d", root, img, size); err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	if o.UEFI {
		return writeESP(o.Dir, img, g.Kernel, initrd)
	}
	return installGRUB(img, core)
}

func fillRoot(o Options, g *Guest, mnt, initrd string) error {
	for _, d := range []string{"bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc", "boot/grub", "lifeboat", "newroot"} {
		if err := os.MkdirAll(filepath.Join(mnt, d), 0o755); err != nil {
			return fmt.Errorf("guest: root: %w", err)
		}
	}
	if err := copyFile("/bin/busybox", filepath.Join(mnt, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	// The applets the init uses, as links, since it runs before anything
	// could install them.
	for _, a := range []string{"sh", "mount", "umount", "hostname", "sha256sum", "ifconfig", "route", "httpd", "getty", "login", "cat", "ls", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(mnt, "bin", a)); err != nil {
			return fmt.Errorf("guest: root: %w", err)
		}
	}
	files := map[string][]byte{
		"/sbin/init":          []byte(rootInit),
		"/boot/grub/grub.cfg": []byte(grubCfg),
		"/etc/passwd":         []byte("root::0:0:root:/:/bin/sh\n"),
		"/etc/group":          []byte("root:x:0:\n"),
		CheckPath:             []byte("lifeboat test guest\n"),
	}
	for p, b := range o.Files {
		files[p] = b
	}
	for p, b := range files {
		mode := os.FileMode(0o644)
		if p == "/sbin/init" || strings.HasPrefix(p, "/lifeboat/run") {
			mode = 0o755
		}
		dst := filepath.Join(mnt, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("guest: root: %w", err)
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			return fmt.Errorf("guest: root: %w", err)
		}
	}
	if err := copyFile(g.Kernel, filepath.Join(mnt, "boot", "vmlinuz"), 0o644); err != nil {
		return err
	}
	return copyFile(initrd, filepath.Join(mnt, "boot", "initrd.img"), 0o644)
}
