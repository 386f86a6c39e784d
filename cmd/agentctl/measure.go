package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// measure counts the writes to the disks for d. The tracking is done by
// `lifeboat-agent track --json` (docs/agent.md), run as a child process,
// so agentctl links no tracker: its tracker is not pinned, tracking ends
// when it exits (also if agentctl is killed), nothing is left in bpffs or
// the kernel, and it runs beside an agent's tracker without touching it.
func measure(ctx context.Context, disks []string, d time.Duration) (Churn, error) {
	c := Churn{Disks: disks, Sizes: newSizes()}
	bin, err := agentBinary()
	if err != nil {
		return c, err
	}
	args := []string{"track", "--json", "--completions=false", "--cut-interval", "1s"}
	for _, p := range disks {
		args = append(args, "--disk", p)
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return c, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return c, err
	}
	if err := cmd.Start(); err != nil {
		return c, fmt.Errorf("start %s: %w", bin, err)
	}
	tracking := make(chan struct{})
	var errLines []string
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		sc := bufio.NewScanner(stderr)
		started := false
		for sc.Scan() {
			if !started && strings.HasPrefix(sc.Text(), "tracking ") {
				started = true
				close(tracking)
				continue
			}
			errLines = append(errLines, sc.Text())
		}
	}()

	secs := int(d.Round(time.Second) / time.Second)
	c.PerSecond = make([]int64, secs)
	var start time.Time
	var mu sync.Mutex
	slot := func() int {
		return min(secs-1, max(0, int(time.Since(start)/time.Second)))
	}
	readErr := make(chan error, 1)
	startRead := make(chan struct{})
	go func() {
		<-startRead
		readErr <- readTrack(stdout, func(l trackLine) {
			mu.Lock()
			defer mu.Unlock()
			countChange(&c, l, slot())
		})
	}()

	select {
	case <-tracking:
	case <-errDone:
		cmd.Wait()
		return c, trackError(bin, errLines)
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return c, ctx.Err()
	}
	start = time.Now()
	close(startRead)
	onTracking()
	end := time.NewTimer(d)
	defer end.Stop()
	select {
	case <-end.C:
	case <-ctx.Done():
	case <-errDone:
	}
	elapsed := time.Since(start)
	// Interrupted, track cuts once more: everything queued so far, dirty
	// regions included, is printed before it exits.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		cmd.Process.Kill()
	}
	rerr := <-readErr
	<-errDone
	werr := cmd.Wait()
	if werr != nil {
		return c, trackError(bin, append(errLines, werr.Error()))
	}
	if rerr != nil {
		return c, fmt.Errorf("read the output of %s track: %w", bin, rerr)
	}
	mu.Lock()
	defer mu.Unlock()
	c.Seconds = min(elapsed, d).Seconds()
	if ctx.Err() != nil {
		// Interrupted: only the seconds measured count.
		c.PerSecond = c.PerSecond[:max(1, min(secs, int(elapsed/time.Second)))]
		c.Seconds = elapsed.Seconds()
	}
	c.finish()
	return c, nil
}

// trackLine is one line of `lifeboat-agent track --json` (docs/agent.md).
type trackLine struct {
	Event  string `json:"event"`
	Disk   string `json:"disk"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Op     string `json:"op"`
	Gen    uint64 `json:"gen"`
}

// readTrack decodes the lines of track --json until the end of r.
func readTrack(r io.Reader, f func(trackLine)) error {
	dec := json.NewDecoder(r)
	for {
		var l trackLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		f(l)
	}
}

// countChange adds one change the tracker reported to c, in second slot.
func countChange(c *Churn, l trackLine, slot int) {
	switch l.Event {
	case "queued":
		n := l.Length
		switch l.Op {
		case "write", "write-zeroes":
			c.Writes++
			c.Bytes += n
			c.PerSecond[slot] += n
			addSize(c.Sizes, n)
		case "discard", "secure-erase":
			c.Discards += n
		}
	case "dirty":
		c.Bytes += l.Length
		c.Dirty += l.Length
		c.PerSecond[slot] += l.Length
	}
}

// trackError is the failure of lifeboat-agent track, with its hint.
func trackError(bin string, lines []string) error {
	var msg []string
	hint := "assess runs as root on Linux >= 5.17 with BTF"
	for _, l := range lines {
		if h, ok := strings.CutPrefix(l, "hint: "); ok {
			hint = h
			continue
		}
		msg = append(msg, strings.TrimPrefix(l, "lifeboat-agent: "))
	}
	if len(msg) == 0 {
		msg = []string{"it stopped before tracking"}
	}
	return api.Errorf(hint, "track the disks with %s: %s", bin, strings.Join(msg, "; "))
}

// agentBinary finds lifeboat-agent: beside agentctl, else in PATH (tests
// replace it).
var agentBinary = func() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "lifeboat-agent")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("lifeboat-agent")
	if err != nil {
		return "", api.Errorf("install the agent package, or put lifeboat-agent beside agentctl or in PATH",
			"assess measures with lifeboat-agent track: %w", err)
	}
	return p, nil
}

// onTracking is called once the disks are tracked (a test hook).
var onTracking = func() {}
