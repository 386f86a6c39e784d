//go:build linux

package fsutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// WholeDisk returns the whole disk ("major:minor") of the block device
// major:minor: the device itself, or the disk a partition belongs to.
func WholeDisk(major, minor uint32) (string, error) {
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	if _, err := os.Stat(sys + "/partition"); err == nil {
		real, err := filepath.EvalSymlinks(sys)
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(real), "dev"))
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if _, err := os.Stat(sys); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", major, minor), nil
}

// MountsOn returns the mount points of the filesystems on the given whole
// disks ("major:minor", as WholeDisk names them), from
// /proc/self/mountinfo; a filesystem mounted twice counts once.
func MountsOn(disks map[string]bool) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		devno, mnt := fields[2], unescapeMount(fields[4])
		var ma, mi uint32
		if _, err := fmt.Sscanf(devno, "%d:%d", &ma, &mi); err != nil || ma == 0 {
			continue
		}
		whole, err := WholeDisk(ma, mi)
		if err != nil || !disks[whole] || seen[devno] {
			continue
		}
		seen[devno] = true
		out = append(out, mnt)
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// FIFREEZE and FITHAW from linux/fs.h (_IOWR('X', 119, int) and 120).
const (
	fiFreeze = 0xc0045877
	fiThaw   = 0xc0045878
)

// Frozen is a set of filesystems frozen by Freeze; Thaw must always run.
type Frozen struct {
	fds  []int
	mnts []string
}

// Mounts returns the mount points frozen.
func (fz *Frozen) Mounts() []string { return append([]string(nil), fz.mnts...) }

// Freeze syncs and freezes each filesystem (FIFREEZE). On error the ones
// already frozen are thawed.
func Freeze(mnts []string) (*Frozen, error) {
	fz := &Frozen{}
	for _, m := range mnts {
		fd, err := unix.Open(m, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fz.Thaw()
			return nil, fmt.Errorf("open %s to freeze it: %w", m, err)
		}
		if err := unix.IoctlSetInt(fd, fiFreeze, 0); err != nil {
			unix.Close(fd)
			fz.Thaw()
			return nil, fmt.Errorf("freeze %s: %w", m, err)
		}
		fz.fds = append(fz.fds, fd)
		fz.mnts = append(fz.mnts, m)
	}
	return fz, nil
}

// Thaw thaws every frozen filesystem, in reverse order. Calling it again
// does nothing.
func (fz *Frozen) Thaw() error {
	var errs []error
	for i := len(fz.fds) - 1; i >= 0; i-- {
		if err := unix.IoctlSetInt(fz.fds[i], fiThaw, 0); err != nil {
			errs = append(errs, fmt.Errorf("thaw %s: %w", fz.mnts[i], err))
		}
		unix.Close(fz.fds[i])
	}
	fz.fds, fz.mnts = nil, nil
	return errors.Join(errs...)
}
