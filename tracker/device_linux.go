//go:build linux

package tracker

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kdev encodes a device number the way the kernel's dev_t does (MKDEV).
func kdev(major, minor uint32) uint32 { return major<<20 | minor }

func kdevSplit(d uint32) (major, minor uint32) { return d >> 20, d & (1<<20 - 1) }

func sysBlock(major, minor uint32) string {
	return fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
}

func readSysInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// inspectDevice resolves a path to the whole disk it lives on and the byte
// range it covers there.
func inspectDevice(path string) (*protection, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &DeviceError{Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, &DeviceError{Path: path, Err: errors.New("no such device"),
				Remedy: "give the path of a block device, e.g. /dev/sdb or /dev/nvme0n1p2 (lsblk lists them)"}
		}
		return nil, &DeviceError{Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, &DeviceError{Path: path, Err: errors.New("not a block device"),
			Remedy: "give the path of a disk or partition, e.g. /dev/sdb or /dev/nvme0n1p2 (lsblk lists them); files and directories cannot be protected"}
	}
	major, minor := unix.Major(st.Rdev), unix.Minor(st.Rdev)
	sys := sysBlock(major, minor)
	size, err := readSysInt(filepath.Join(sys, "size"))
	if err != nil {
		return nil, &DeviceError{Path: path, Err: fmt.Errorf("read size from sysfs: %w", err)}
	}
	p := &protection{path: abs, dev: kdev(major, minor), start: 0, end: math.MaxInt64, diskSize: size * 512}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		start, err := readSysInt(filepath.Join(sys, "start"))
		if err != nil {
			return nil, &DeviceError{Path: path, Err: fmt.Errorf("read partition start: %w", err)}
		}
		// The parent directory of a partition in sysfs is its disk.
		real, err := filepath.EvalSymlinks(sys)
		if err != nil {
			return nil, &DeviceError{Path: path, Err: err}
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(real), "dev"))
		if err != nil {
			return nil, &DeviceError{Path: path, Err: fmt.Errorf("find the disk of partition: %w", err)}
		}
		var dma, dmi uint32
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &dma, &dmi); err != nil {
			return nil, &DeviceError{Path: path, Err: fmt.Errorf("parse disk number %q: %w", b, err)}
		}
		p.dev = kdev(dma, dmi)
		p.start, p.end = start*512, (start+size)*512
		if p.diskSize, err = wholeDiskSize(p.dev); err != nil {
			return nil, &DeviceError{Path: path, Err: err}
		}
	}
	if size == 0 {
		return nil, &DeviceError{Path: path, Err: errors.New("device has size 0"),
			Remedy: "attach a backing file or medium first (for a loop device: losetup)"}
	}
	return p, nil
}

func wholeDiskSize(dev uint32) (int64, error) {
	ma, mi := kdevSplit(dev)
	n, err := readSysInt(filepath.Join(sysBlock(ma, mi), "size"))
	if err != nil {
		return 0, fmt.Errorf("read disk size: %w", err)
	}
	return n * 512, nil
}

// devPath names a device by the kernel's name for it.
func devPath(dev uint32) string {
	ma, mi := kdevSplit(dev)
	b, err := os.ReadFile(filepath.Join(sysBlock(ma, mi), "uevent"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				return "/dev/" + name
			}
		}
	}
	return fmt.Sprintf("dev:%d:%d", ma, mi)
}

// CheckDevice returns a *DeviceError if path cannot be protected: it is
// not a block device, does not exist, or has no size.
func CheckDevice(path string) error {
	_, err := inspectDevice(path)
	return err
}

// placeholderPath names a protected range learnt from pins: the partition
// of the disk with exactly that range if there is one, else the disk.
func placeholderPath(dev uint32, start, end int64) string {
	disk := devPath(dev)
	if start == 0 && end == math.MaxInt64 {
		return disk
	}
	ma, mi := kdevSplit(dev)
	real, err := filepath.EvalSymlinks(sysBlock(ma, mi))
	if err != nil {
		return disk
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return disk
	}
	for _, e := range ents {
		dir := filepath.Join(real, e.Name())
		pstart, err1 := readSysInt(filepath.Join(dir, "start"))
		psize, err2 := readSysInt(filepath.Join(dir, "size"))
		if err1 != nil || err2 != nil {
			continue
		}
		if pstart*512 == start && (pstart+psize)*512 == end {
			return "/dev/" + e.Name()
		}
	}
	return disk
}
