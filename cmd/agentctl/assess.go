package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// Churn is what assess measured on the disks, all together.
type Churn struct {
	Disks    []string `json:"disks"`
	Seconds  float64  `json:"seconds"`
	Writes   uint64   `json:"writes"`
	Bytes    int64    `json:"bytes"` // written (write and write-zeroes), to be replicated
	Discards int64    `json:"discarded_bytes"`
	// Dirty is bytes the tracker reported only as dirty regions (its ring
	// buffer overflowed); counted in Bytes too.
	Dirty int64 `json:"dirty_bytes"`
	// PerSecond is the bytes written in each second of the measurement.
	PerSecond []int64 `json:"per_second"`
	AvgBps    float64 `json:"average_bytes_per_second"`
	PeakBps   float64 `json:"peak_bytes_per_second"`
	PerDay    float64 `json:"per_day_bytes"`
	// Sizes is the write size distribution: count of writes of at most
	// UpTo bytes (and more than the previous bucket's); UpTo 0 is "larger".
	Sizes []SizeBucket `json:"write_sizes"`
}

// SizeBucket is one bar of the write size histogram.
type SizeBucket struct {
	UpTo  int64  `json:"up_to_bytes"`
	Count uint64 `json:"count"`
	Bytes int64  `json:"bytes"`
}

var sizeBounds = []int64{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 0}

func newSizes() []SizeBucket {
	b := make([]SizeBucket, len(sizeBounds))
	for i, u := range sizeBounds {
		b[i].UpTo = u
	}
	return b
}

func addSize(b []SizeBucket, n int64) {
	for i := range b {
		if b[i].UpTo == 0 || n <= b[i].UpTo {
			b[i].Count++
			b[i].Bytes += n
			return
		}
	}
}

// finish computes the rates from the per-second series.
func (c *Churn) finish() {
	if c.Seconds > 0 {
		c.AvgBps = float64(c.Bytes) / c.Seconds
	}
	for _, b := range c.PerSecond {
		c.PeakBps = math.Max(c.PeakBps, float64(b))
	}
	c.PerDay = c.AvgBps * 86400
}

// Link is the measured or given throughput to the process server.
type Link struct {
	// Source is "probe" (measured) or "operator" (--link-mbps).
	Source  string  `json:"source"`
	Address string  `json:"address,omitempty"`
	Bps     float64 `json:"bytes_per_second"`
	Mbps    float64 `json:"mbit_per_second"`
	// ProbeBytes and ProbeSeconds are the probe behind Bps.
	ProbeBytes   int64   `json:"probe_bytes,omitempty"`
	ProbeSeconds float64 `json:"probe_seconds,omitempty"`
}

// Verdict says whether the link keeps up with the churn.
type Verdict struct {
	// Code: keeps-up, keeps-up-on-average, cannot-keep-up or unknown.
	Code string `json:"code"`
	Text string `json:"text"`
	// MaxBacklogBytes is the largest backlog the measured seconds would
	// have left waiting for the server at the link's rate.
	MaxBacklogBytes int64 `json:"max_backlog_bytes"`
	// Headroom is the link's rate over the average churn.
	Headroom float64 `json:"headroom"`
}

// Assessment is what `agentctl assess --json` prints (docs/agent.md).
type Assessment struct {
	Churn     Churn   `json:"churn"`
	Link      *Link   `json:"link,omitempty"`
	LinkError string  `json:"link_error,omitempty"`
	Verdict   Verdict `json:"verdict"`
}

// defaultMemory is the agent's default --memory-bytes: without a spool
// (the default) it holds that much of segments for the server, then
// tracks the changed regions only (metadata mode) until it catches up.
const defaultMemory = 16 << 20

// judge compares a churn with a link rate (bytes/s, 0: unknown).
func judge(c Churn, linkBps float64) Verdict {
	if linkBps <= 0 {
		return Verdict{Code: "unknown", Text: "link not measured: register the agent (--state) so assess can probe the process server, or give --link-mbps"}
	}
	var backlog, worst float64
	for _, b := range c.PerSecond {
		backlog = math.Max(0, backlog+float64(b)-linkBps)
		worst = math.Max(worst, backlog)
	}
	v := Verdict{MaxBacklogBytes: int64(worst)}
	if c.AvgBps > 0 {
		v.Headroom = linkBps / c.AvgBps
	}
	switch {
	case linkBps < c.AvgBps:
		v.Code = "cannot-keep-up"
		v.Text = fmt.Sprintf("CANNOT KEEP UP: the disks change %s/s on average, the link carries %s/s; the backlog grows by %s/s and the RPO has no bound. Use a faster link or process server, or protect fewer disks",
			bytesString(int64(c.AvgBps)), bytesString(int64(linkBps)), bytesString(int64(c.AvgBps-linkBps)))
	case linkBps < c.PeakBps:
		v.Code = "keeps-up-on-average"
		v.Text = fmt.Sprintf("KEEPS UP ON AVERAGE: average %s/s fits the link's %s/s (%.1fx), but peaks of %s/s do not: up to %s wait for the server and the RPO lag grows during peaks",
			bytesString(int64(c.AvgBps)), bytesString(int64(linkBps)), v.Headroom, bytesString(int64(c.PeakBps)), bytesString(v.MaxBacklogBytes))
		if v.MaxBacklogBytes > defaultMemory {
			v.Text += fmt.Sprintf("; that is more than the agent holds in memory by default (%s, --memory-bytes): beyond it the agent tracks the changed regions only (metadata mode) and lists no point until it has caught up, nothing is lost."+
				" To keep points through the peaks, raise --memory-bytes or give the agent a spool of at least %s on a disk it does not protect (--spool-bytes)",
				bytesString(defaultMemory), bytesString(v.MaxBacklogBytes))
		} else {
			v.Text += fmt.Sprintf(", within what the agent holds in memory by default (%s, --memory-bytes)", bytesString(defaultMemory))
		}
	default:
		v.Code = "keeps-up"
		v.Text = fmt.Sprintf("KEEPS UP: peak %s/s and average %s/s fit the link's %s/s", bytesString(int64(c.PeakBps)), bytesString(int64(c.AvgBps)), bytesString(int64(linkBps)))
		if c.AvgBps > 0 {
			v.Text += fmt.Sprintf(" (%.1fx the average)", v.Headroom)
		}
	}
	return v
}

func assessCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("assess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.SetUsage(fs, "agentctl assess --disk DEV [--disk DEV...] [--duration 1m] [--state DIR | --server HOST:PORT | --link-mbps N] [--json]")
	var disks stringList
	fs.Var(&disks, "disk", "block device to measure; repeat for several")
	duration := fs.Duration("duration", time.Minute, "how long to measure (at least 1s)")
	stateOf := stateFlag(fs, "the agent's state directory: its identity is used to probe the process server")
	server := fs.String("server", "", "process server HOST:PORT to probe (default: the one the agent registered with)")
	linkMbps := fs.Float64("link-mbps", 0, "link rate in Mbit/s to compare with, instead of probing (e.g. when the agent is not registered)")
	probeMiB := fs.Int64("probe-mib", 64, "MiB sent to the process server to measure the link")
	asJSON := fs.Bool("json", false, "print JSON (documented in docs/agent.md)")
	if err := cmdline.Parse(fs, args); err != nil {
		return exitUsage, err
	}
	switch {
	case fs.NArg() > 0:
		return exitUsage, cmdline.Usagef("assess", "assess: unexpected argument %q", fs.Arg(0))
	case len(disks) == 0:
		return exitUsage, cmdline.Usagef("assess", "assess: give at least one --disk DEV")
	case *duration < time.Second:
		return exitUsage, cmdline.Usagef("assess", "assess: --duration %s: must be at least 1s", *duration)
	case *linkMbps < 0:
		return exitUsage, errors.New("assess: --link-mbps must be positive")
	case *probeMiB < 1 || *probeMiB > 1024:
		return exitUsage, errors.New("assess: --probe-mib must be within 1..1024")
	}
	if !*asJSON {
		fmt.Fprintf(stderr, "measuring writes to %s for %s...\n", strings.Join(disks, ", "), *duration)
	}
	state, err := stateOf()
	if err != nil {
		return exitUsage, fmt.Errorf("assess: %w", err)
	}
	churn, err := measure(ctx, disks, *duration)
	if err != nil {
		return exitAskFailed, fmt.Errorf("assess: %w", err)
	}
	a := Assessment{Churn: churn}
	if *linkMbps > 0 {
		a.Link = &Link{Source: "operator", Bps: *linkMbps * 1e6 / 8, Mbps: *linkMbps}
	} else if l, err := probe(ctx, state, *server, *probeMiB<<20); err != nil {
		a.LinkError = err.Error()
	} else {
		a.Link = l
	}
	var bps float64
	if a.Link != nil {
		bps = a.Link.Bps
	}
	a.Verdict = judge(churn, bps)
	if *asJSON {
		writeJSON(stdout, a)
	} else {
		renderAssessment(stdout, a)
	}
	switch a.Verdict.Code {
	case "keeps-up", "keeps-up-on-average":
		return 0, nil
	case "unknown":
		return exitAskFailed, nil
	}
	return exitUnhealthy, nil
}

// probe measures the link to the process server with the agent's identity.
func probe(ctx context.Context, state, addr string, n int64) (*Link, error) {
	idDir := filepath.Join(state, "identity")
	certPEM, err1 := os.ReadFile(filepath.Join(idDir, "machine.crt"))
	keyPEM, err2 := os.ReadFile(filepath.Join(idDir, "machine.key"))
	caPEM, err3 := os.ReadFile(filepath.Join(idDir, "ca.crt"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("no agent identity in %s (%v): register the agent first, or give --link-mbps", idDir, errors.Unwrap(err1))
	}
	if addr == "" {
		b, err := os.ReadFile(filepath.Join(idDir, "process-server"))
		if err != nil {
			return nil, fmt.Errorf("no process server address in %s: give --server HOST:PORT", idDir)
		}
		addr = strings.TrimSpace(string(b))
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity in %s: %w", idDir, err)
	}
	p, err := client.NewProcess(addr, cert, caPEM)
	if err != nil {
		return nil, err
	}
	defer p.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, took, err := p.Probe(ctx, n)
	if err != nil {
		if h := api.Hint(err); h != "" {
			return nil, fmt.Errorf("probe %s: %w (%s)", addr, err, h)
		}
		return nil, fmt.Errorf("probe %s: %w", addr, err)
	}
	bps := float64(res.Bytes) / took.Seconds()
	return &Link{Source: "probe", Address: addr, Bps: bps, Mbps: bps * 8 / 1e6, ProbeBytes: res.Bytes, ProbeSeconds: took.Seconds()}, nil
}

func renderAssessment(w io.Writer, a Assessment) {
	c := a.Churn
	fmt.Fprintf(w, "churn of %s over %.0fs\n", strings.Join(c.Disks, ", "), c.Seconds)
	fmt.Fprintf(w, "  written      %s in %d writes (%s discarded, %s known only as dirty regions)\n", bytesString(c.Bytes), c.Writes, bytesString(c.Discards), bytesString(c.Dirty))
	fmt.Fprintf(w, "  average      %s/s (%.1f Mbit/s)\n", bytesString(int64(c.AvgBps)), c.AvgBps*8/1e6)
	fmt.Fprintf(w, "  peak         %s/s (%.1f Mbit/s, busiest second)\n", bytesString(int64(c.PeakBps)), c.PeakBps*8/1e6)
	fmt.Fprintf(w, "  per day      %s (at the average)\n", bytesString(int64(c.PerDay)))
	fmt.Fprintln(w, "  write sizes")
	var max uint64
	for _, b := range c.Sizes {
		max = maxU(max, b.Count)
	}
	for _, b := range c.Sizes {
		label := "<= " + bytesString(b.UpTo)
		if b.UpTo == 0 {
			label = "> 1 MiB"
		}
		n := 0
		if max > 0 {
			n = int(30 * b.Count / max)
		}
		fmt.Fprintf(w, "    %-10s %8d  %s\n", label, b.Count, strings.Repeat("#", n))
	}
	switch {
	case a.Link != nil && a.Link.Source == "probe":
		fmt.Fprintf(w, "link to %s: %.1f Mbit/s (%s/s, %s sent in %.2fs)\n", a.Link.Address, a.Link.Mbps, bytesString(int64(a.Link.Bps)), bytesString(a.Link.ProbeBytes), a.Link.ProbeSeconds)
	case a.Link != nil:
		fmt.Fprintf(w, "link: %.1f Mbit/s (%s/s, given by --link-mbps)\n", a.Link.Mbps, bytesString(int64(a.Link.Bps)))
	default:
		fmt.Fprintf(w, "link: not measured: %s\n", a.LinkError)
	}
	fmt.Fprintf(w, "verdict: %s\n", a.Verdict.Text)
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
