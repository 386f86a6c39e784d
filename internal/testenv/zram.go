//go:build linux

package testenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const zramControl = "/sys/class/zram-control"

// Zram is a zram device created by NewZram: a bio-based block device (no
// blk-mq request queue), unlike loop.
type Zram struct {
	Path  string // /dev/zramN
	Index int    // N
	Size  int64  // disksize in bytes, as the kernel reports it

	dev     uint64
	madeDev bool
}

// NewZram hot-adds a zram device, sets its disksize to size bytes (the kernel
// rounds up to a page) and returns it. A cleanup resets and hot-removes it,
// also when the test fails or panics. It skips or fails the test (see
// RequireRoot) without root or without /sys/class/zram-control (zram module
// not loaded).
func NewZram(t testing.TB, size int64) *Zram {
	t.Helper()
	RequireRoot(t)
	requirePath(t, zramControl+"/hot_add", "zram hot-add ("+zramControl+"; modprobe zram)")
	if size <= 0 {
		t.Fatalf("testenv: NewZram: invalid size %d", size)
	}
	s, err := readTrim(zramControl + "/hot_add")
	if err != nil {
		t.Fatalf("testenv: NewZram: hot_add: %v", err)
	}
	idx, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("testenv: NewZram: hot_add returned %q", s)
	}
	z := &Zram{Path: fmt.Sprintf("/dev/zram%d", idx), Index: idx}
	t.Cleanup(func() {
		if err := z.remove(); err != nil {
			t.Errorf("testenv: cleanup of %s: %v", z.Path, err)
		}
	})
	sys := z.sysDir()
	if err := writeSysfs(sys+"/disksize", strconv.FormatInt(size, 10)); err != nil {
		t.Fatalf("testenv: NewZram: %v", err)
	}
	z.dev, err = sysDevNumber(sys)
	if err != nil {
		t.Fatalf("testenv: NewZram: %v", err)
	}
	z.madeDev, err = ensureNode(z.Path, sys, 2*time.Second)
	if err != nil {
		t.Fatalf("testenv: NewZram: device node: %v", err)
	}
	z.Size, err = readInt(sys + "/disksize")
	if err != nil {
		t.Fatalf("testenv: NewZram: %v", err)
	}
	return z
}

func (z *Zram) sysDir() string { return fmt.Sprintf("/sys/block/zram%d", z.Index) }

// Dev returns the major and minor number of the device.
func (z *Zram) Dev() (major, minor uint32) { return unix.Major(z.dev), unix.Minor(z.dev) }

// remove resets the device (frees its memory) and hot-removes it. Both fail
// with EBUSY while the device is open; retry for a while.
func (z *Zram) remove() error {
	if z.madeDev {
		if err := removeNode(z.Path, z.dev); err != nil {
			return err
		}
	}
	if _, err := os.Stat(z.sysDir()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var last error
	ok := waitFor(15*time.Second, func() bool {
		if err := writeSysfs(z.sysDir()+"/reset", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			last = err
			return false
		}
		err := writeSysfs(zramControl+"/hot_remove", strconv.Itoa(z.Index))
		if err == nil || errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist) {
			return true
		}
		last = err
		return false
	})
	if !ok {
		return fmt.Errorf("reset/hot_remove of zram%d failed for 15s (still open?): %v", z.Index, last)
	}
	if !waitFor(5*time.Second, func() bool {
		_, err := os.Stat(z.sysDir())
		return errors.Is(err, os.ErrNotExist)
	}) {
		return fmt.Errorf("zram%d still in sysfs after hot_remove", z.Index)
	}
	return nil
}
