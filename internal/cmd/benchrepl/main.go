// Command benchrepl is the measuring helper of scripts/bench-replication.sh.
// It does the parts that are awkward in bash: polling the agent's status
// over its unix socket (without starting agentctl ten times a second),
// sampling the agent's memory, fitting a trend to the backlog, and reading
// fio's JSON. It starts, stops and changes nothing; the script does that.
//
//	benchrepl watch --state DIR [--pid PID] [--interval 1s] [--until protected|drained] [--timeout 0]
//	    Polls GET /v1/status of the agent's local API and prints one line
//	    per poll (see sample), to stdout, until SIGINT/SIGTERM, --timeout,
//	    or the --until condition: "protected" (every disk in state
//	    protected) or "drained" (every disk protected with pending_bytes 0,
//	    no queued segment and lag current_seconds 0: every change seen is
//	    durable on the server). It then prints "until <cond> <unix seconds>"
//	    and exits 0; 3 on timeout. Polls that fail (agent not up yet) are
//	    skipped.
//	benchrepl analyze --from T0 --to T1 FILE
//	    Reads the samples FILE written by watch and prints shell assignments
//	    for the window [T0, T1] (unix seconds): the least-squares slope of
//	    the backlog (pending_bytes + spool queued_bytes, bytes/s), the
//	    largest backlog and current lag, and the median and largest RSS.
//	benchrepl status --state DIR
//	    One poll; prints shell assignments of the lag summary and backlog
//	    of the first disk.
//	benchrepl fio FILE
//	    Prints shell assignments from fio's --output-format=json: write
//	    bandwidth (bytes/s), IOPS, runtime (ms), and fio's own CPU.
//	benchrepl logspan --log FILE --from MSG --to MSG
//	    Seconds between the first JSON log line whose msg (or message) is MSG
//	    and the first later one whose msg is the other MSG.
//
// The status fields used are those of agentctl status --json (docs/agent.md).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// status is the part of the agent's status that the benchmark reads.
type status struct {
	Disks []struct {
		Name         string  `json:"name"`
		State        string  `json:"state"`
		Progress     float64 `json:"progress"`
		PendingBytes int64   `json:"pending_bytes"`
		Spool        struct {
			Queued int   `json:"queued_segments"`
			Bytes  int64 `json:"queued_bytes"`
		} `json:"spool"`
		Lag struct {
			Samples uint64  `json:"samples"`
			P50     float64 `json:"p50_seconds"`
			P99     float64 `json:"p99_seconds"`
			Max     float64 `json:"max_seconds"`
			Current float64 `json:"current_seconds"`
		} `json:"lag"`
	} `json:"disks"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchrepl watch|analyze|status|fio|logspan ... (see the package doc)")
		os.Exit(2)
	}
	var err error
	code := 0
	switch os.Args[1] {
	case "watch":
		code, err = watch(os.Args[2:])
	case "analyze":
		err = analyze(os.Args[2:])
	case "status":
		err = oneStatus(os.Args[2:])
	case "fio":
		err = fioSummary(os.Args[2:])
	case "logspan":
		err = logspan(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
		code = 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrepl:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func client(state string) *http.Client {
	sock := filepath.Join(state, "agent.sock")
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
}

func poll(c *http.Client) (*status, error) {
	resp, err := c.Get("http://agent/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	if len(st.Disks) == 0 {
		return nil, errors.New("status has no disk")
	}
	return &st, nil
}

// memKB returns VmRSS and VmHWM of a process in KiB (0 if unknown).
func memKB(pid int) (rss, hwm int64) {
	if pid <= 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// A sample line: unix time, state, progress, pending, queued bytes, queued
// segments, lag samples, p50, p99, max, current, VmRSS KiB, VmHWM KiB.
const sampleFormat = "%.3f %s %.4f %d %d %d %d %.3f %.3f %.3f %.3f %d %d\n"

type sample struct {
	t                      float64
	state                  string
	pending, queued        int64
	current                float64
	rss, hwm               int64
	p50, p99, max          float64
	progress               float64
	queuedSegs, lagSamples int64
}

func watch(args []string) (int, error) {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	state := fs.String("state", "", "the agent's state directory")
	pid := fs.Int("pid", 0, "the agent's pid, for VmRSS/VmHWM")
	interval := fs.Duration("interval", time.Second, "poll interval")
	until := fs.String("until", "", "stop at: protected, drained")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: never); exit status 3")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if *state == "" {
		return 2, errors.New("watch: --state is required")
	}
	switch *until {
	case "", "protected", "drained":
	default:
		return 2, fmt.Errorf("watch: --until %q: want protected or drained", *until)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	c := client(*state)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		if st, err := poll(c); err == nil {
			now := float64(time.Now().UnixNano()) / 1e9
			rss, hwm := memKB(*pid)
			d := st.Disks[0]
			fmt.Fprintf(out, sampleFormat, now, d.State, d.Progress, d.PendingBytes, d.Spool.Bytes, d.Spool.Queued,
				d.Lag.Samples, d.Lag.P50, d.Lag.P99, d.Lag.Max, d.Lag.Current, rss, hwm)
			out.Flush()
			done := *until != ""
			for _, d := range st.Disks {
				switch *until {
				case "protected":
					done = done && d.State == "protected"
				case "drained":
					done = done && d.State == "protected" && d.PendingBytes == 0 && d.Spool.Queued == 0 && d.Lag.Current == 0
				}
			}
			if done {
				fmt.Fprintf(out, "until %s %.3f\n", *until, now)
				return 0, nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 3, nil
			}
			return 0, nil
		case <-tick.C:
		}
	}
}

func readSamples(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ss []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 13 {
			continue // "until" lines
		}
		var s sample
		var err error
		fl := func(i int) float64 {
			v, e := strconv.ParseFloat(f[i], 64)
			err = errors.Join(err, e)
			return v
		}
		in := func(i int) int64 {
			v, e := strconv.ParseInt(f[i], 10, 64)
			err = errors.Join(err, e)
			return v
		}
		s.t, s.state, s.progress, s.pending, s.queued, s.queuedSegs = fl(0), f[1], fl(2), in(3), in(4), in(5)
		s.lagSamples, s.p50, s.p99, s.max, s.current, s.rss, s.hwm = in(6), fl(7), fl(8), fl(9), fl(10), in(11), in(12)
		if err != nil {
			return nil, fmt.Errorf("%s: bad sample %q: %w", path, sc.Text(), err)
		}
		ss = append(ss, s)
	}
	return ss, sc.Err()
}

func analyze(args []string) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	from := fs.Float64("from", 0, "window start, unix seconds")
	to := fs.Float64("to", math.Inf(1), "window end, unix seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("analyze: one samples file")
	}
	all, err := readSamples(fs.Arg(0))
	if err != nil {
		return err
	}
	var w []sample
	for _, s := range all {
		if s.t >= *from && s.t <= *to {
			w = append(w, s)
		}
	}
	// Least-squares slope of backlog over time.
	var slope float64
	if n := float64(len(w)); n >= 2 {
		var st, sb, stt, stb float64
		for _, s := range w {
			t, b := s.t-*from, float64(s.pending+s.queued)
			st += t
			sb += b
			stt += t * t
			stb += t * b
		}
		if den := n*stt - st*st; den > 0 {
			slope = (n*stb - st*sb) / den
		}
	}
	var maxBacklog int64
	var maxCur float64
	var rss []int64
	var hwm int64
	for _, s := range w {
		maxBacklog = max(maxBacklog, s.pending+s.queued)
		maxCur = max(maxCur, s.current)
		if s.rss > 0 {
			rss = append(rss, s.rss)
		}
		hwm = max(hwm, s.hwm)
	}
	slices.Sort(rss)
	var rssMed, rssMax int64
	if len(rss) > 0 {
		rssMed, rssMax = rss[len(rss)/2], rss[len(rss)-1]
	}
	var first, last int64
	if len(w) > 0 {
		first, last = w[0].pending+w[0].queued, w[len(w)-1].pending+w[len(w)-1].queued
	}
	fmt.Printf("n=%d slope=%.0f max_backlog=%d first_backlog=%d last_backlog=%d max_current=%.3f rss_median_kb=%d rss_max_kb=%d hwm_kb=%d\n",
		len(w), slope, maxBacklog, first, last, maxCur, rssMed, rssMax, hwm)
	return nil
}

func oneStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	state := fs.String("state", "", "the agent's state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := poll(client(*state))
	if err != nil {
		return err
	}
	d := st.Disks[0]
	fmt.Printf("state=%s pending=%d queued_bytes=%d queued_segments=%d lag_samples=%d lag_p50=%.3f lag_p99=%.3f lag_max=%.3f lag_current=%.3f\n",
		d.State, d.PendingBytes, d.Spool.Bytes, d.Spool.Queued, d.Lag.Samples, d.Lag.P50, d.Lag.P99, d.Lag.Max, d.Lag.Current)
	return nil
}

func fioSummary(args []string) error {
	if len(args) != 1 {
		return errors.New("fio: one JSON file")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	// fio may print notes before the JSON object.
	if i := strings.IndexByte(string(b), '{'); i > 0 {
		b = b[i:]
	}
	var out struct {
		Jobs []struct {
			Error int     `json:"error"`
			Usr   float64 `json:"usr_cpu"`
			Sys   float64 `json:"sys_cpu"`
			Write struct {
				BW      float64 `json:"bw_bytes"`
				IOPS    float64 `json:"iops"`
				Runtime int64   `json:"runtime"`
				IOBytes int64   `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("fio output %s: %w", args[0], err)
	}
	if len(out.Jobs) != 1 {
		return fmt.Errorf("fio output %s: %d jobs, want 1", args[0], len(out.Jobs))
	}
	j := out.Jobs[0]
	fmt.Printf("fio_bw=%.0f fio_iops=%.0f fio_runtime_ms=%d fio_bytes=%d fio_cpu=%.1f fio_error=%d\n",
		j.Write.BW, j.Write.IOPS, j.Write.Runtime, j.Write.IOBytes, j.Usr+j.Sys, j.Error)
	return nil
}

func logspan(args []string) error {
	fs := flag.NewFlagSet("logspan", flag.ContinueOnError)
	log := fs.String("log", "", "JSON log (log/slog)")
	from := fs.String("from", "", "msg of the first line")
	to := fs.String("to", "", "msg of the later line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*log)
	if err != nil {
		return err
	}
	defer f.Close()
	var t0 time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Message string    `json:"message"` // the agent's JSON logs
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Msg == "" {
			l.Msg = l.Message
		}
		switch {
		case t0.IsZero() && l.Msg == *from:
			t0 = l.Time
		case !t0.IsZero() && l.Msg == *to:
			fmt.Printf("%.3f\n", l.Time.Sub(t0).Seconds())
			return nil
		}
	}
	return fmt.Errorf("logspan: no %q line followed by a %q line in %s", *from, *to, *log)
}
