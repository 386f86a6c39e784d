//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/recovery/boot/guesttest"
)

// TestBenchDrill is `make bench-drill`, not a test: it runs only with
// LIFEBOAT_BENCH_DRILL=N (the number of timed runs). Setup as in
// TestBootVerifiedFailoverAndDrills (the real guest protected by a real
// agent, one point), then N times `lifeboat failover --point P --test
// --boot --verify SCRIPT` (the script greps the console for the check
// file's checksum), timing from the command's start: to ready
// (materialize + boot to ready, plus the server's own steps) and to
// verified (the command's end), with the parts from the result.
func TestBenchDrill(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("LIFEBOAT_BENCH_DRILL"))
	if runs <= 0 {
		t.Skip("a benchmark: make bench-drill (LIFEBOAT_BENCH_DRILL=N)")
	}
	testenv.RequireBPF(t)
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-img", "grub-mkimage", "mkfs.ext4", "sfdisk", "partx")
	g, err := guesttest.Build(guesttest.Options{Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatalf("build guest: %v", err)
	}
	loop := testenv.NewLoop(t, 0, testenv.WithBacking(g.Image), testenv.WithPartScan(1))
	root := mount(t, loop.Partition(1))
	srv := startServer(t)
	ag := startAgent(t, srv, "bench-guest", []string{loop.Path})
	sum := writeCheck(t, root, "bench ")
	p := ag.bookmark()
	verify := writeScript(t, t.TempDir(), "verify.sh", fmt.Sprintf("#!/bin/sh\ngrep -q '%s%s' \"$LIFEBOAT_CONSOLE_LOG\"\n", guesttest.CheckPrefix, sum))
	var toReady, toVerified, mat, ready, ver, other []float64
	for i := 0; i < runs; i++ {
		start := time.Now()
		out, err := srv.lifeboat("failover", "bench-guest", "--point", p, "--test", "--boot", "--verify", verify, "--timeout", "5m", "--json")
		total := time.Since(start).Seconds()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		var r api.BootResult
		if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Pass {
			t.Fatalf("run %d: %v %+v", i, err, r)
		}
		// The command's end minus verify is when ready was seen (and
		// the server answered right after the verify).
		toReady = append(toReady, total-r.VerifySeconds)
		toVerified = append(toVerified, total)
		mat = append(mat, r.MaterializeSeconds)
		ready = append(ready, r.BootToReadySeconds)
		ver = append(ver, r.VerifySeconds)
		// The rest: the CLI's start and TLS, the point lookup, the
		// overlays, qemu's exec, the answer.
		other = append(other, total-r.MaterializeSeconds-r.BootToReadySeconds-r.VerifySeconds)
		t.Logf("run %d: to ready %.1f s, to verified %.1f s (materialize %.2f, boot to ready %.1f on %s/%s, verify %.2f)",
			i+1, total-r.VerifySeconds, total, r.MaterializeSeconds, r.BootToReadySeconds, r.Bus, r.Accel, r.VerifySeconds)
	}
	med := func(xs []float64) string {
		s := slices.Clone(xs)
		slices.Sort(s)
		return fmt.Sprintf("%.2f (min %.2f, max %.2f)", s[len(s)/2], s[0], s[len(s)-1])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bench-drill: %d runs, 256 MiB guest disk, TCG\n", runs)
	fmt.Fprintf(&b, "  command to ready      %s s\n", med(toReady))
	fmt.Fprintf(&b, "  command to verified   %s s\n", med(toVerified))
	fmt.Fprintf(&b, "  materialize           %s s\n", med(mat))
	fmt.Fprintf(&b, "  qemu start to ready   %s s\n", med(ready))
	fmt.Fprintf(&b, "  verify                %s s\n", med(ver))
	fmt.Fprintf(&b, "  the rest (CLI, TLS, overlays, answer) %s s\n", med(other))
	fmt.Fprintf(&b, "  command: make bench-drill (RUNS=%d)\n", runs)
	fmt.Print(b.String())
}
