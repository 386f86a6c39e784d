//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// dm-crypt is not available on the test machines: the device's sysfs is
// built as the kernel lays it out (dev/block/M:m a link to the device's
// directory, dm/uuid, slaves/), for the real device of a real directory.
func TestOnEncryptedDevice(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	devNum := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	build := func(t *testing.T, top string, devs map[string]string, slaves map[string][]string) string {
		sys := t.TempDir()
		for name, uuid := range devs {
			d := filepath.Join(sys, "devices", "virtual", "block", name)
			os.MkdirAll(filepath.Join(d, "slaves"), 0o755)
			if uuid != "" {
				os.MkdirAll(filepath.Join(d, "dm"), 0o755)
				os.WriteFile(filepath.Join(d, "dm", "uuid"), []byte(uuid+"\n"), 0o644)
			}
			for _, s := range slaves[name] {
				os.Symlink(filepath.Join(sys, "devices", "virtual", "block", s), filepath.Join(d, "slaves", s))
			}
		}
		os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
		if err := os.Symlink(filepath.Join(sys, "devices", "virtual", "block", top), filepath.Join(sys, "dev", "block", devNum)); err != nil {
			t.Fatal(err)
		}
		return sys
	}
	for _, c := range []struct {
		name   string
		top    string
		devs   map[string]string
		slaves map[string][]string
		want   bool
	}{
		{"luks", "dm-0", map[string]string{"dm-0": "CRYPT-LUKS2-0123abcd-luks-data"}, nil, true},
		{"lvm on luks", "dm-1", map[string]string{"dm-1": "LVM-abc", "dm-0": "CRYPT-LUKS2-0123abcd-pv", "sda2": ""},
			map[string][]string{"dm-1": {"dm-0"}, "dm-0": {"sda2"}}, true},
		{"plain lvm", "dm-1", map[string]string{"dm-1": "LVM-abc", "sda2": ""}, map[string][]string{"dm-1": {"sda2"}}, false},
		{"plain disk", "sda", map[string]string{"sda": ""}, nil, false},
	} {
		sys := build(t, c.top, c.devs, c.slaves)
		enc, how, err := onEncryptedDevice(sys, dir)
		if err != nil || enc != c.want {
			t.Errorf("%s: encrypted %v (%s), %v; want %v", c.name, enc, how, err, c.want)
		}
	}
	// This machine has no dm-crypt: the real sysfs says so.
	if enc, how, err := onEncryptedDevice("/sys", dir); err != nil || enc {
		t.Errorf("real sysfs: %v (%s), %v", enc, how, err)
	}
}
