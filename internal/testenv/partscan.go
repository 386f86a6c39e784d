//go:build linux

package testenv

import (
	"fmt"
	"os"
	"time"
)

// WithPartScan attaches a backing file that already holds a partition
// table (a disk image) with partition scanning, and waits until its first
// n partitions exist as /dev/loopNpK (adding them with partx and making
// the nodes when the kernel or udev did not).
func WithPartScan(n int) LoopOption {
	return func(c *loopConfig) { c.scanParts = n }
}

// scanPartitions waits for the first n partitions of the attached image.
func (l *LoopDevice) scanPartitions(n int) error {
	partSys := func(k int) string { return fmt.Sprintf("/sys/class/block/%sp%d", l.name, k) }
	all := func() bool {
		for k := 1; k <= n; k++ {
			if _, err := os.Stat(partSys(k)); err != nil {
				return false
			}
		}
		return true
	}
	if !waitFor(time.Second, all) {
		out, err := runCmd(30*time.Second, "", "partx", "--update", l.Path)
		if err != nil {
			return fmt.Errorf("partitions did not appear, and partx failed: %v", err)
		}
		if !waitFor(5*time.Second, all) {
			return fmt.Errorf("%d partitions did not appear in /sys/class/block after partx --update (%q)", n, out)
		}
	}
	l.nparts = n
	for k := 1; k <= n; k++ {
		created, err := ensureNode(l.Partition(k), partSys(k), time.Second)
		if err != nil {
			return err
		}
		if created {
			dev, _ := sysDevNumber(partSys(k))
			l.made = append(l.made, madeNode{l.Partition(k), dev})
		}
	}
	return nil
}
