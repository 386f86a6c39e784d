package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Results of a filesystem check (FSCheck.Result).
const (
	// ResultClean: the checker found nothing wrong (exit status 0).
	ResultClean = "clean"
	// ResultErrors: the checker found problems (non-zero exit status).
	ResultErrors = "errors"
	// ResultFailed: the check could not run (checker missing, loop device
	// unavailable, timeout).
	ResultFailed = "failed"
	// ResultUnsupported: a filesystem Lifeboat has no checker for.
	ResultUnsupported = "unsupported"
	// ResultUnknown: a partition with no filesystem Lifeboat recognizes,
	// of a type that need not hold one (swap, BIOS boot, raw data).
	ResultUnknown = "unknown"
	// ResultUnrecognized: where a filesystem should be (an image with no
	// partition table, a partition typed for a Linux filesystem), none
	// is recognized: a blank or damaged disk.
	ResultUnrecognized = "unrecognized"
)

// FSCheck is the result of checking one filesystem (or place where one was
// expected) of a disk image.
type FSCheck struct {
	// Partition is the partition number, 0 for the whole disk.
	Partition int
	// Offset and Size locate it in the image, in bytes.
	Offset, Size int64
	// Type is the filesystem type DetectFS found, "" if none.
	Type string
	// Tool is the checker's command line ("e2fsck -fn", "xfs_repair -n"),
	// "" when none ran.
	Tool string
	// ExitStatus of the checker; -1 when it did not run or was killed.
	ExitStatus int
	// Result is one of the Result* constants.
	Result string
	// Summary is the checker's most telling line, or why no check ran.
	Summary string
	// Output is the end of the checker's output (at most 4 KiB).
	Output string
	// Duration of the check.
	Duration time.Duration
}

// OK reports whether the check found nothing wrong: clean, or nothing
// that Lifeboat can or should check.
func (c FSCheck) OK() bool {
	switch c.Result {
	case ResultClean, ResultUnsupported, ResultUnknown:
		return true
	}
	return false
}

// Checker checks the filesystems of disk images read-only.
type Checker struct {
	// Timeout bounds one filesystem's check; 0 means 30 minutes.
	Timeout time.Duration
	// Log, nil for slog.Default().
	Log *slog.Logger
}

// CheckImage finds the filesystems of the image at path (a whole-disk
// filesystem, else the partitions of its table) and checks each one
// read-only. It returns an error only when the image cannot be read or its
// partition table is damaged; a filesystem that fails its check is a result,
// not an error.
func (c *Checker) CheckImage(ctx context.Context, path string) ([]FSCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("check image: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check image: %w", err)
	}
	size := fi.Size()
	typ, err := DetectFS(f, 0, size)
	if err != nil {
		return nil, fmt.Errorf("check image %s: %w", path, err)
	}
	if typ != "" {
		return []FSCheck{c.check(ctx, path, Partition{Number: 0, Start: 0, Size: size}, typ, size)}, nil
	}
	t, err := ReadTable(f, size)
	if errors.Is(err, ErrNoTable) {
		return []FSCheck{{Size: size, ExitStatus: -1, Result: ResultUnrecognized,
			Summary: "no partition table and no filesystem recognized: a blank or damaged disk, or one used raw"}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check image %s: partition table: %w", path, err)
	}
	var out []FSCheck
	for _, p := range t.Partitions {
		typ, err := DetectFS(f, p.Start, p.Size)
		if err != nil {
			return nil, fmt.Errorf("check image %s: %s: %w", path, p, err)
		}
		out = append(out, c.check(ctx, path, p, typ, size))
	}
	if len(out) == 0 {
		out = append(out, FSCheck{Size: size, ExitStatus: -1, Result: ResultUnrecognized,
			Summary: t.Scheme + " partition table with no partition"})
	}
	return out, nil
}

// holdsLinuxFS reports whether a partition's type says it holds a Linux
// filesystem.
func holdsLinuxFS(p Partition) bool {
	switch p.TypeName {
	case "linux", "linux-root-x86-64", "linux-home":
		return true
	}
	return false
}

// check checks one filesystem: p.Number 0 is the whole image.
func (c *Checker) check(ctx context.Context, path string, p Partition, typ string, imageSize int64) (res FSCheck) {
	res = FSCheck{Partition: p.Number, Offset: p.Start, Size: p.Size, Type: typ, ExitStatus: -1}
	var argv []string
	switch typ {
	case FSExt2, FSExt3, FSExt4:
		argv = []string{"e2fsck", "-fn"}
	case FSXFS:
		argv = []string{"xfs_repair", "-n"}
	case "":
		if p.Number == 0 || holdsLinuxFS(p) {
			res.Result, res.Summary = ResultUnrecognized, "partition typed for a Linux filesystem holds no filesystem Lifeboat recognizes"
		} else {
			res.Result, res.Summary = ResultUnknown, "no filesystem recognized"
		}
		return res
	default:
		res.Result, res.Summary = ResultUnsupported, "no checker for "+typ
		return res
	}
	res.Tool = strings.Join(argv, " ")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("image", path, "partition", p.Number, "type", typ)
	if _, err := exec.LookPath(argv[0]); err != nil {
		res.Result, res.Summary = ResultFailed, argv[0]+" not found: install "+map[string]string{"e2fsck": "e2fsprogs", "xfs_repair": "xfsprogs"}[argv[0]]
		return res
	}
	target := path
	if p.Number != 0 || p.Size != imageSize {
		dev, err := attachLoop(ctx, path, p.Start, p.Size)
		if err != nil {
			res.Result, res.Summary = ResultFailed, "cannot attach a read-only loop device for the partition: "+err.Error()
			return res
		}
		target = dev
		defer func() {
			if err := detachLoop(dev); err != nil {
				log.Error("loop device left attached", "dev", dev, "err", err)
				res.Summary += "; loop device " + dev + " could not be detached: " + err.Error()
			}
		}()
	} else if typ == FSXFS {
		argv = append(argv, "-f") // a regular file, not a device
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], append(argv[1:], target)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out capture
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res.Output = string(out.tail)
	var ee *exec.ExitError
	switch {
	case cctx.Err() != nil:
		res.Result = ResultFailed
		if ctx.Err() != nil {
			res.Summary = "canceled"
		} else {
			res.Summary = "timed out after " + timeout.String()
		}
		return res
	case err == nil:
		res.ExitStatus, res.Result = 0, ResultClean
	case errors.As(err, &ee):
		res.ExitStatus, res.Result = ee.ExitCode(), ResultErrors
	default:
		res.Result, res.Summary = ResultFailed, "cannot run "+argv[0]+": "+err.Error()
		return res
	}
	res.Summary = summarize(argv[0], res.ExitStatus, out.lines())
	// The target (a loop device's transient name, or the image) says
	// nothing the result does not.
	res.Summary = strings.TrimPrefix(res.Summary, target+": ")
	log.Info("filesystem checked", "tool", res.Tool, "exit", res.ExitStatus, "summary", res.Summary)
	return res
}

var problemLine = regexp.MustCompile(`(?i)error|corrupt|bad |invalid|fail|couldn't|cannot|would (junk|clear|fix|reset|move|have)|disconnected|not found`)

// summarize picks the most telling line of a checker's output.
func summarize(tool string, exit int, lines []string) string {
	if len(lines) == 0 {
		return "exit status " + strconv.Itoa(exit)
	}
	last := lines[len(lines)-1]
	switch tool {
	case "e2fsck":
		for _, l := range lines {
			if strings.Contains(l, "*****") {
				return strings.Join(strings.Fields(strings.ReplaceAll(l, "*", "")), " ")
			}
		}
		if exit != 0 {
			for _, l := range lines {
				if problemLine.MatchString(l) && !strings.HasPrefix(l, "e2fsck ") {
					return l
				}
			}
		}
		return last
	case "xfs_repair":
		if exit == 0 {
			return "no corruption found"
		}
		for _, l := range lines {
			if problemLine.MatchString(l) && !strings.Contains(l, "host filesystem geometry") && !strings.HasPrefix(l, "Repair may fail") {
				return l
			}
		}
	}
	return last
}

// capture keeps the first and the last 4 KiB of a command's output.
type capture struct {
	head, tail []byte
	cut        bool
}

const captureSize = 4096

func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	if room := captureSize - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > captureSize {
		c.tail = append(c.tail[:0:0], c.tail[len(c.tail)-captureSize:]...)
		c.cut = true
	}
	return n, nil
}

// lines returns the non-empty lines of the head and the tail (both whole
// when the output was short).
func (c *capture) lines() []string {
	text := c.tail
	if c.cut {
		text = append(append(bytes.Clone(c.head), '\n'), c.tail...)
	}
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
