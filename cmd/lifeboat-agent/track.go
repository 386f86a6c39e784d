package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/tracker"
)

// trackedDisks is the tracker as track uses it (track_linux.go opens it).
type trackedDisks interface {
	tracker.Tracker
	Adopted() bool
}

// trackerOptions are the tracker's options that track's flags set.
type trackerOptions struct {
	pinDir      string
	ringSize    int
	granularity int64
	completions bool
}

// trackCommand prints the extents the tracker sees, live.
type trackCommand struct {
	out, errOut io.Writer
}

// trackLine is one line of `track --json`. Stable: documented in
// docs/agent.md.
type trackLine struct {
	Event     string     `json:"event"`
	ID        uint64     `json:"id,omitempty"`
	Disk      string     `json:"disk,omitempty"`
	Offset    int64      `json:"offset"`
	Length    int64      `json:"length"`
	Op        tracker.Op `json:"op,omitempty"`
	Gen       uint64     `json:"gen"`
	Completed bool       `json:"completed"`
}

func (c *trackCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("track", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	var disks stringList
	fs.Var(&disks, "disk", "block device to track (whole disk or partition); repeat for several")
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	pinDir := fs.String("pin-dir", "", "bpffs directory to pin the tracker in, so a later run continues with no gap (default: tracking ends on exit)")
	cutEvery := fs.Duration("cut-interval", time.Second, "cut a generation this often; regions from the overflow bitmap are reported at cuts")
	ringSize := fs.Int("ring-buffer", 0, "ring buffer size in bytes (power of two; default 8 MiB, 64 KiB without completions: only cut markers use it then), the per-CPU queue rings share a quarter of it (default 2 MiB)")
	gran := fs.Int64("bitmap-granularity", 0, "dirty bitmap granularity in bytes (default 64 KiB)")
	completions := fs.Bool("completions", true, "also report each request's completion (false: only what changed, as the agent consumes it; lighter)")
	summary := fs.Bool("summary", false, "print no extents: at each cut, per disk the events and the bytes changed in that generation once coalesced (what the agent's rounds see)")
	fs.Usage = func() {
		fmt.Fprintln(c.errOut, "Usage: lifeboat-agent track --disk DEV [--disk DEV...] [--json]")
		fmt.Fprintln(c.errOut, "Prints every change to the disks until SIGINT or SIGTERM.")
		cmdline.PrintDefaults(fs)
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if len(disks) == 0 {
		fs.Usage()
		return cmdline.Usagef("track", "track: give at least one --disk")
	}
	if fs.NArg() > 0 {
		return cmdline.Usagef("track", "track: unexpected argument %q", fs.Arg(0))
	}
	for _, d := range disks {
		if err := checkDevice(d); err != nil {
			return fmt.Errorf("track: %w", err)
		}
	}
	t, err := openTracker(trackerOptions{pinDir: *pinDir, ringSize: *ringSize, granularity: *gran, completions: *completions && !*summary})
	if err != nil {
		return fmt.Errorf("track: %w", err)
	}
	defer t.Close()
	for _, d := range disks {
		if err := t.Protect(d); err != nil {
			return fmt.Errorf("track: %w", err)
		}
		if gap := t.Gap(d); gap != nil {
			fmt.Fprintln(c.errOut, "warning:", gap)
		}
	}
	fmt.Fprintf(c.errOut, "tracking %v (pinned: %v, adopted: %v); stop with Ctrl-C\n", []string(disks), *pinDir != "", t.Adopted())

	w := bufio.NewWriter(c.out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	sums := map[string]*genSummary{}
	print := func(e tracker.Event) error {
		if *summary {
			return summarize(w, sums, e, *asJSON)
		}
		l := trackLine{Event: e.Kind.String(), ID: e.ID, Disk: e.Extent.Disk, Offset: e.Extent.Offset,
			Length: e.Extent.Length, Op: e.Extent.Op, Gen: e.Extent.Gen, Completed: e.Kind == tracker.EventCompleted}
		if *asJSON {
			return enc.Encode(l)
		}
		if e.Kind == tracker.EventCut {
			_, err := fmt.Fprintf(w, "cut gen=%d\n", l.Gen)
			return err
		}
		_, err := fmt.Fprintf(w, "%-9s gen=%d %s %s offset=%d length=%d id=%d\n", l.Event, l.Gen, l.Disk, l.Op, l.Offset, l.Length, l.ID)
		return err
	}

	tick := time.NewTicker(*cutEvery)
	defer tick.Stop()
	cutErr := make(chan error, 1)
	cutting := false
	for {
		select {
		case batch, ok := <-t.Events():
			if !ok {
				return errors.New("track: tracker stopped")
			}
			for _, e := range batch {
				if err := print(e); err != nil {
					return fmt.Errorf("track: write: %w", err)
				}
			}
			if len(t.Events()) == 0 {
				w.Flush()
			}
		case <-tick.C:
			if !cutting {
				cutting = true
				go func() { _, err := t.Cut(ctx); cutErr <- err }()
			}
		case err := <-cutErr:
			cutting = false
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("track: %w", err)
			}
		case <-ctx.Done():
			return c.finish(t, cutting, cutErr, print, w)
		}
	}
}

// finish cuts once more so that everything seen so far, bitmap regions
// included, is printed before exiting.
func (c *trackCommand) finish(t trackedDisks, cutting bool, cutErr chan error, print func(tracker.Event) error, w *bufio.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cutting {
		<-cutErr
	}
	gen := make(chan uint64, 1)
	go func() {
		g, err := t.Cut(ctx)
		if err != nil {
			fmt.Fprintln(c.errOut, "warning: final cut:", err)
			g = 0
		}
		gen <- g
	}()
	final := uint64(0)
	for {
		select {
		case batch, ok := <-t.Events():
			if !ok {
				return nil
			}
			for _, e := range batch {
				if err := print(e); err != nil {
					return err
				}
				if e.Kind == tracker.EventCut && final != 0 && e.Extent.Gen >= final-1 {
					return c.summary(t, w)
				}
			}
		case g := <-gen:
			if g == 0 {
				return c.summary(t, w)
			}
			final = g
			// The cut's marker was delivered before Cut returned; drain
			// what is buffered.
			for len(t.Events()) > 0 {
				for _, e := range <-t.Events() {
					if err := print(e); err != nil {
						return err
					}
				}
			}
			return c.summary(t, w)
		case <-ctx.Done():
			return c.summary(t, w)
		}
	}
}

func (c *trackCommand) summary(t trackedDisks, w *bufio.Writer) error {
	if err := w.Flush(); err != nil {
		return err
	}
	st, err := t.Stats()
	if err != nil {
		return err
	}
	for _, d := range st.Disks {
		fmt.Fprintf(c.errOut, "%s: %d events, %d bytes, %d drops, %d bitmap regions, %d lost (mode %s)\n",
			d.Disk, d.Events, d.Bytes, d.Drops, d.BitmapRegions, d.Lost, d.Mode)
	}
	return nil
}

// genSummary is what one generation changed on one disk (track --summary).
type genSummary struct {
	events  int
	changed tracker.Set
}

// summaryLine is one line of track --summary --json.
type summaryLine struct {
	Disk         string `json:"disk"`
	Gen          uint64 `json:"gen"`
	Events       int    `json:"events"`
	Extents      int    `json:"extents"`
	ChangedBytes int64  `json:"changed_bytes"`
}

// summarize folds queue and dirty events into per-disk sets, as the
// agent's rounds do, and prints them at each cut.
func summarize(w *bufio.Writer, sums map[string]*genSummary, e tracker.Event, asJSON bool) error {
	switch e.Kind {
	case tracker.EventQueued, tracker.EventDirty:
		g := sums[e.Extent.Disk]
		if g == nil {
			g = &genSummary{}
			sums[e.Extent.Disk] = g
		}
		g.events++
		g.changed.Add(e.Extent.Offset, e.Extent.Length)
	case tracker.EventCut:
		disks := make([]string, 0, len(sums))
		for d := range sums {
			disks = append(disks, d)
		}
		sort.Strings(disks)
		for _, d := range disks {
			g := sums[d]
			l := summaryLine{Disk: d, Gen: e.Extent.Gen, Events: g.events, Extents: g.changed.Len(), ChangedBytes: g.changed.Bytes()}
			var err error
			if asJSON {
				err = json.NewEncoder(w).Encode(l)
			} else {
				_, err = fmt.Fprintf(w, "gen=%d %s: %d events, %d extents, %d bytes changed\n", l.Gen, l.Disk, l.Events, l.Extents, l.ChangedBytes)
			}
			if err != nil {
				return err
			}
			delete(sums, d)
		}
	}
	return nil
}
