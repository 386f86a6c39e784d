//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

var (
	builtAgent    string
	builtAgentErr error
	buildAgent    sync.Once
)

// useBuiltAgent makes assess run a lifeboat-agent built from this tree.
func useBuiltAgent(t *testing.T) {
	t.Helper()
	buildAgent.Do(func() {
		dir, err := os.MkdirTemp("", "agentctl-test")
		if err != nil {
			builtAgentErr = err
			return
		}
		builtAgent = filepath.Join(dir, "lifeboat-agent")
		out, err := exec.Command("go", "build", "-o", builtAgent, "github.com/lifeboat-dr/lifeboat/cmd/lifeboat-agent").CombinedOutput()
		if err != nil {
			builtAgentErr = fmt.Errorf("build lifeboat-agent: %v\n%s", err, out)
		}
	})
	if builtAgentErr != nil {
		t.Fatal(builtAgentErr)
	}
	prev := agentBinary
	agentBinary = func() (string, error) { return builtAgent, nil }
	t.Cleanup(func() { agentBinary = prev })
}

// TestAssessMeasuresFio: fio writes a known amount to a loop device while
// assess measures it with its own tracker (lifeboat-agent track); the bytes, the size histogram
// and the rates match what fio wrote, and the verdict follows the link
// rate given.
func TestAssessMeasuresFio(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "fio")
	useBuiltAgent(t)
	loop := testenv.NewLoop(t, 128<<20)
	const written = 32 << 20
	for _, c := range []struct {
		mbps     string
		verdict  string
		exitCode int
	}{{"2000", "keeps-up", 0}, {"8", "cannot-keep-up", 1}} {
		t.Run(c.mbps+"Mbps", func(t *testing.T) {
			started := make(chan struct{})
			onTracking = func() { close(started) }
			t.Cleanup(func() { onTracking = func() {} })
			var out, errOut bytes.Buffer
			type result struct {
				code int
				err  error
			}
			res := make(chan result, 1)
			go func() {
				code, err := run(context.Background(), []string{"assess", "--disk", loop.Path, "--duration", "5s", "--link-mbps", c.mbps, "--json"}, &out, &errOut)
				res <- result{code, err}
			}()
			select {
			case <-started:
			case r := <-res:
				t.Fatalf("assess ended before tracking: %d %v %s", r.code, r.err, errOut.String())
			}
			// 64 KiB direct writes at 16 MiB/s: 32 MiB in about 2 s.
			fio := exec.Command("fio", "--name=assess", "--filename="+loop.Path, "--rw=write", "--bs=64k",
				fmt.Sprintf("--size=%d", written), "--direct=1", "--thread", "--ioengine=psync", "--rate=16m")
			if b, err := fio.CombinedOutput(); err != nil {
				t.Fatalf("fio: %v\n%s", err, b)
			}
			r := <-res
			if r.err != nil || r.code != c.exitCode {
				t.Fatalf("assess exit %d, %v (want %d)\n%s", r.code, r.err, c.exitCode, errOut.String())
			}
			var a Assessment
			if err := json.Unmarshal(out.Bytes(), &a); err != nil {
				t.Fatalf("%v: %s", err, out.Bytes())
			}
			ch := a.Churn
			t.Logf("measured %d bytes in %d writes, avg %.0f B/s, peak %.0f B/s, per day %.0f; verdict %s",
				ch.Bytes, ch.Writes, ch.AvgBps, ch.PeakBps, ch.PerDay, a.Verdict.Text)
			// Nothing but fio writes to this loop device.
			if ch.Bytes < written || ch.Bytes > written+written/100 {
				t.Errorf("measured %d bytes, fio wrote %d", ch.Bytes, written)
			}
			var in64k uint64
			for _, b := range ch.Sizes {
				if b.UpTo == 64<<10 {
					in64k = b.Count
				}
			}
			if in64k < written/(64<<10) {
				t.Errorf("histogram has %d writes of <= 64 KiB, fio made %d: %+v", in64k, written/(64<<10), ch.Sizes)
			}
			if ch.Seconds < 4.5 || ch.Seconds > 6 {
				t.Errorf("measured for %.2fs, asked 5s", ch.Seconds)
			}
			if avg := float64(written) / ch.Seconds; ch.AvgBps < 0.95*avg || ch.AvgBps > 1.05*avg {
				t.Errorf("average %.0f B/s, want about %.0f", ch.AvgBps, avg)
			}
			// The busiest second holds more than the average and at most
			// all that was written. (fio's rate of 16 MiB/s is an average:
			// starved on a loaded machine it catches up in bursts, 25 MiB
			// in one second in a CI run, so the rate is no bound.)
			if ch.PeakBps <= ch.AvgBps || ch.PeakBps > float64(written) {
				t.Errorf("peak %.0f B/s with average %.0f B/s and %d bytes written", ch.PeakBps, ch.AvgBps, written)
			}
			if d := ch.PerDay - ch.AvgBps*86400; d > 1 || d < -1 {
				t.Errorf("per day %.0f, average %.0f B/s", ch.PerDay, ch.AvgBps)
			}
			if a.Verdict.Code != c.verdict || a.Link == nil || a.Link.Source != "operator" {
				t.Errorf("verdict %+v link %+v, want %s", a.Verdict, a.Link, c.verdict)
			}
		})
	}
}

// TestAssessWithoutIdentity: with no registered agent and no --link-mbps,
// assess still measures but says the link is unknown and how to give it.
func TestAssessWithoutIdentity(t *testing.T) {
	testenv.RequireBPF(t)
	useBuiltAgent(t)
	loop := testenv.NewLoop(t, 16<<20)
	var out, errOut bytes.Buffer
	code, err := run(context.Background(), []string{"assess", "--disk", loop.Path, "--duration", "1s", "--state", t.TempDir()}, &out, &errOut)
	if err != nil || code != exitAskFailed {
		t.Fatalf("exit %d, %v; want %d", code, err, exitAskFailed)
	}
	if s := out.String(); !strings.Contains(s, "--link-mbps") || !strings.Contains(s, "verdict: link not measured") {
		t.Errorf("output:\n%s", s)
	}
}

func TestJudge(t *testing.T) {
	c := Churn{PerSecond: []int64{10 << 20, 0, 0, 30 << 20}, Seconds: 4, Bytes: 40 << 20}
	c.finish() // average 10 MiB/s, peak 30 MiB/s
	for _, x := range []struct {
		link    float64
		code    string
		backlog int64
	}{{40 << 20, "keeps-up", 0}, {20 << 20, "keeps-up-on-average", 10 << 20}, {5 << 20, "cannot-keep-up", 25 << 20}, {0, "unknown", 0}} {
		v := judge(c, x.link)
		if v.Code != x.code || v.MaxBacklogBytes != x.backlog {
			t.Errorf("link %.0f: %+v, want %s with backlog %d", x.link, v, x.code, x.backlog)
		}
	}
}
