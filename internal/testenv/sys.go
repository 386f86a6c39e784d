//go:build linux

package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runCmd runs a command with a deadline and returns its combined output. The
// error names the command line and includes its output. If the process does
// not even exit after it was killed (stuck in the kernel), runCmd gives up
// waiting for it and says so rather than hanging the test binary.
func runCmd(timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	line := strings.Join(append([]string{name}, args...), " ")
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		text := strings.TrimSpace(out.String())
		if err != nil {
			if ctx.Err() != nil {
				return text, fmt.Errorf("%s: timed out after %v: %v; output: %q", line, timeout, err, text)
			}
			return text, fmt.Errorf("%s: %v; output: %q", line, err, text)
		}
		return text, nil
	case <-time.After(timeout + 10*time.Second):
		// The process ignores SIGKILL: it sleeps uninterruptibly in the
		// kernel. Leave the goroutine behind; do not touch out (racy).
		return "", fmt.Errorf("%s: still running %v after it was killed (uninterruptible sleep in the kernel?)", line, 10*time.Second)
	}
}

// waitFor polls cond every few milliseconds until it returns true or the
// timeout expires; it reports whether cond became true.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	sleep := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(sleep)
		if sleep < 50*time.Millisecond {
			sleep *= 2
		}
	}
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readInt(path string) (int64, error) {
	s, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, s)
	}
	return v, nil
}

// writeSysfs writes value to a sysfs attribute with a single write(2), so the
// kernel's error (EBUSY, EINVAL) is returned as is.
func writeSysfs(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, cerr)
	}
	return nil
}

// sysDevNumber reads a "major:minor" dev attribute from sysfs.
func sysDevNumber(sysDir string) (uint64, error) {
	s, err := readTrim(sysDir + "/dev")
	if err != nil {
		return 0, err
	}
	var maj, mnr uint32
	if _, err := fmt.Sscanf(s, "%d:%d", &maj, &mnr); err != nil {
		return 0, fmt.Errorf("%s/dev: cannot parse %q", sysDir, s)
	}
	return unix.Mkdev(maj, mnr), nil
}

// blockDevNumber returns the device number of the block device node at path.
func blockDevNumber(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device (mode %#o)", path, st.Mode)
	}
	return st.Rdev, nil
}

// ensureNode makes sure the block device node path exists and refers to the
// device described by sysDir (/sys/class/block/NAME). There is no udev here:
// devtmpfs normally creates the node; if it has not appeared after wait,
// ensureNode creates it with mknod and reports created=true, so the caller
// removes it again.
func ensureNode(path, sysDir string, wait time.Duration) (created bool, err error) {
	want, err := sysDevNumber(sysDir)
	if err != nil {
		return false, err
	}
	check := func() (bool, error) {
		got, err := blockDevNumber(path)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if got != want {
			return false, fmt.Errorf("%s exists but is device %d:%d, not %d:%d (stale node?)",
				path, unix.Major(got), unix.Minor(got), unix.Major(want), unix.Minor(want))
		}
		return true, nil
	}
	var checkErr error
	ok := waitFor(wait, func() bool {
		var found bool
		found, checkErr = check()
		return found || checkErr != nil
	})
	if checkErr != nil {
		return false, checkErr
	}
	if ok {
		return false, nil
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(want)); err != nil {
		if errors.Is(err, unix.EEXIST) { // devtmpfs won the race
			_, err := check()
			return false, err
		}
		return false, fmt.Errorf("mknod %s (%d:%d): %w", path, unix.Major(want), unix.Minor(want), err)
	}
	return true, nil
}

// removeNode removes a device node this package created, if it is still the
// node for dev.
func removeNode(path string, dev uint64) error {
	got, err := blockDevNumber(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil || got != dev {
		return nil // not ours any more; leave it alone
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
