package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// bootFlags are the flags of a boot-verified test failover (docs/boot.md).
type bootFlags struct {
	boot    bool
	net     string
	ready   string
	timeout time.Duration
	verify  string
	keep    bool
	port    int
}

func (b *bootFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&b.boot, "boot", false, "with --test: boot the images in an isolated VM on the server host and wait until the guest is up (docs/boot.md)")
	fs.StringVar(&b.net, "net", "", "with --boot: none (no network card, the default) or isolated (no route out, one port forwarded from 127.0.0.1 on the server)")
	fs.IntVar(&b.port, "guest-port", 0, "with --net isolated: the guest's TCP `PORT` to forward (default 22)")
	fs.StringVar(&b.ready, "ready", "", "with --boot: `REGEX` of the console of a ready guest (default: a login prompt)")
	fs.DurationVar(&b.timeout, "timeout", 0, "with --boot: how long the guest may take to be ready (default 10m without KVM, 5m with)")
	fs.StringVar(&b.verify, "verify", "", "with --boot: `SCRIPT` run ON THE SERVER HOST once the guest is ready; its exit status decides (absolute path there)")
	fs.BoolVar(&b.keep, "keep", false, "with --boot: leave a passing VM running ('lifeboat vms', 'lifeboat vms stop ID')")
}

// unused refuses the boot flags without --boot.
func (b *bootFlags) unused() error {
	if b.net != "" || b.ready != "" || b.timeout != 0 || b.verify != "" || b.keep || b.port != 0 {
		return &Error{Err: errors.New("failover: --net, --ready, --timeout, --verify, --keep and --guest-port go with --boot"), Remedy: "add --test --boot"}
	}
	return nil
}

// runBoot runs a boot-verified test failover.
func (c *FailoverCommand) runBoot(ctx context.Context, machine, point, out string, test, check, asJSON bool, b bootFlags) error {
	if !test {
		return &Error{Err: errors.New("failover: --boot needs --test"), Remedy: "a boot-verified failover is a test: add --test (the machine's state does not change)"}
	}
	if check {
		return &Error{Err: errors.New("failover: --check and --boot do not go together"), Remedy: "a boot proves more than a filesystem check: drop --check, or run the check on its own with --out"}
	}
	if b.timeout < 0 {
		return &Error{Err: errors.New("failover: negative --timeout"), Remedy: "give --timeout like 10m"}
	}
	if out != "" {
		dir, err := filepath.Abs(out)
		if err != nil {
			return err
		}
		out = dir
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	res, err := a.BootTest(ctx, machine, api.BootTestRequest{Point: point, Out: out, Net: b.net, GuestPort: b.port, Ready: b.ready,
		TimeoutSeconds: b.timeout.Seconds(), Verify: b.verify, Keep: b.keep})
	if err != nil {
		return callError(err, u)
	}
	if asJSON {
		err = writeJSON(c.main.Stdout, res)
	} else {
		err = printBoot(c.main.Stdout, res)
	}
	if err != nil {
		return err
	}
	if !res.Pass {
		return &Error{Err: fmt.Errorf("failover: boot test failed: %s", reasonSummary(res.Reason)),
			Remedy: "read the console log on the server host: " + dash(res.ConsoleLog)}
	}
	return nil
}

// reasonSummary is the first line of a boot's reason, or of each bus
// tried ("virtio bus: …; sata bus: …"), without the console lines.
func reasonSummary(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "virtio bus: ") || strings.HasPrefix(l, "sata bus: ") || strings.HasPrefix(l, "ide bus: ") {
			out = append(out, strings.TrimSuffix(strings.TrimSuffix(l, "; last console lines:"), ":"))
		}
	}
	if len(out) == 0 {
		return firstLine(s)
	}
	return strings.Join(out, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// printBoot prints the result of a boot test or drill.
func printBoot(w io.Writer, r api.BootResult) error {
	kind := "boot-verified test failover"
	if r.Drill {
		kind = "drill"
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s of %s at point %s (%s, %s): %s\n", kind, r.Machine, r.Point.ID, dash(r.Point.Kind),
		r.Point.Time.UTC().Format(time.RFC3339Nano), verdict)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", strings.ReplaceAll(r.Reason, "\n", "\n        "))
	}
	tw := table(w)
	fmt.Fprintf(tw, "materialize\t%.1f s\n", r.MaterializeSeconds)
	fmt.Fprintf(tw, "boot to ready\t%.1f s\n", r.BootToReadySeconds)
	if r.Verify != "" {
		fmt.Fprintf(tw, "verify\t%.1f s (%s, exit %d)\n", r.VerifySeconds, r.Verify, r.VerifyExit)
	}
	fmt.Fprintf(tw, "total\t%.1f s\n", r.TotalSeconds)
	fmt.Fprintf(tw, "firmware, bus, accel\t%s, %s (tried %s), %s\n", dash(r.Firmware), dash(r.Bus), dash(strings.Join(r.Buses, ",")), dash(r.Accel))
	fmt.Fprintf(tw, "network\t%s\n", r.Net)
	fmt.Fprintf(tw, "priority\t%s\n", dash(r.Priority))
	fmt.Fprintf(tw, "console log\t%s (on the server host)\n", dash(r.ConsoleLog))
	if r.Out != "" {
		fmt.Fprintf(tw, "images\t%s (kept)\n", r.Out)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.VerifyOutput != "" {
		fmt.Fprintf(w, "verify output:\n%s\n", indent(r.VerifyOutput))
	}
	if r.ConsoleTail != "" {
		fmt.Fprintf(w, "console (last lines):\n%s\n", indent(r.ConsoleTail))
	}
	if r.VM != nil {
		printVMHowTo(w, *r.VM)
	}
	return nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// printVMHowTo says how to reach and stop a kept VM.
func printVMHowTo(w io.Writer, v api.VM) {
	fmt.Fprintf(w, "VM %s kept running (pid %d on the server host)\n", v.ID, v.Pid)
	fmt.Fprintf(w, "  console:  socat -,raw,echo=0 UNIX-CONNECT:%s   (log: %s)\n", v.ConsoleSocket, v.ConsoleLog)
	if v.HostPort != 0 {
		fmt.Fprintf(w, "  network:  127.0.0.1:%d on the server host reaches the guest\n", v.HostPort)
	}
	fmt.Fprintf(w, "  stop:     lifeboat vms stop %s\n", v.ID)
}
