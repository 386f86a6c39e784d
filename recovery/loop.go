package recovery

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// attachLoop attaches [off, off+size) of the image at path to a free loop
// device, read-only, and returns the device's path.
func attachLoop(ctx context.Context, path string, off, size int64) (string, error) {
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", "--read-only",
		"--offset", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10), path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup: %w: %s", err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/loop") || strings.ContainsAny(dev, " \n") {
		return "", fmt.Errorf("losetup: unexpected answer %q", dev)
	}
	return dev, nil
}

// detachLoop detaches a loop device; it retries for a while, since a
// device briefly held (udev probing it) cannot be detached. It does not
// take a context: a canceled check must still detach.
func detachLoop(dev string) error {
	var err error
	for i := 0; i < 50; i++ {
		var out []byte
		out, err = exec.Command("losetup", "--detach", dev).CombinedOutput()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("losetup --detach %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
