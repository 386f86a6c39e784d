//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysRoot is where sysfs is mounted (tests give a tree of their own).
var sysRoot = "/sys"

// onEncryptedDevice reports whether dir's file system is on a dm-crypt
// device, directly or below another device-mapper or md layer (LVM on
// LUKS): a device whose sysfs dm/uuid starts with "CRYPT-", found by
// walking the slaves of dir's device. how names the device.
func onEncryptedDevice(sys, dir string) (enc bool, how string, err error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, "", fmt.Errorf("stat %s: %w", dir, err)
	}
	devDir := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	real, err := filepath.EvalSymlinks(devDir)
	if err != nil {
		// No block device: tmpfs, overlay, a network file system.
		return false, fmt.Sprintf("%d:%d (no block device)", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
	}
	seen := map[string]bool{}
	var walk func(d string, depth int) (bool, string)
	walk = func(d string, depth int) (bool, string) {
		if depth > 8 || seen[d] {
			return false, ""
		}
		seen[d] = true
		if b, err := os.ReadFile(filepath.Join(d, "dm", "uuid")); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "CRYPT-") {
			return true, filepath.Base(d)
		}
		// A partition's holder is its parent disk's directory.
		if _, err := os.Stat(filepath.Join(d, "partition")); err == nil {
			if ok, name := walk(filepath.Dir(d), depth+1); ok {
				return true, name
			}
		}
		ents, _ := os.ReadDir(filepath.Join(d, "slaves"))
		for _, e := range ents {
			next, err := filepath.EvalSymlinks(filepath.Join(d, "slaves", e.Name()))
			if err != nil {
				continue
			}
			if ok, name := walk(next, depth+1); ok {
				return true, name
			}
		}
		return false, ""
	}
	if ok, name := walk(real, 0); ok {
		return true, filepath.Base(real) + " (dm-crypt " + name + ")", nil
	}
	return false, filepath.Base(real), nil
}
