package configsrv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery/boot"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
)

// BootFunc boots images (boot.Boot; tests may count its calls).
type BootFunc func(ctx context.Context, o boot.Options) (boot.Result, error)

// BootRecordsDir holds the console logs of the boot-verified test
// failovers and drills, DataDir/boots/<machine>/<time>-<kind>/console.log.
const BootRecordsDir = "boots"

// bootTmpDir holds the temporary images of boot tests without --out
// (DataDir/boot-tmp/<id>), on the file system of target storage so that
// materializing can share its blocks (reflink).
const bootTmpDir = "boot-tmp"

// keepRecords is how many boot records (console logs) a machine keeps.
const keepRecords = 20

// checkBootRequest validates a boot test's options and converts them.
func checkBootRequest(req api.BootTestRequest) (boot.Options, error) {
	var o boot.Options
	switch req.Net {
	case "", api.BootNetNone:
	case api.BootNetIsolated:
		o.Net = boot.NetIsolated
	default:
		return o, httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("unknown network %q", req.Net), "give --net none (the default: no network card) or --net isolated")
	}
	if req.GuestPort < 0 || req.GuestPort > 65535 {
		return o, httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("guest port %d out of range", req.GuestPort), "give a TCP port of the guest, 1-65535")
	}
	o.GuestPort = req.GuestPort
	if req.Ready != "" {
		re, err := regexp.Compile(req.Ready)
		if err != nil {
			return o, httpapi.Errorf(http.StatusBadRequest, "bad --ready pattern: "+err.Error(), "give a Go regular expression (RE2) the guest's console prints once it is up")
		}
		o.Ready = re
	}
	if req.TimeoutSeconds < 0 {
		return o, httpapi.Errorf(http.StatusBadRequest, "negative timeout", "give --timeout as a positive duration, for example 10m")
	}
	o.Timeout = time.Duration(req.TimeoutSeconds * float64(time.Second))
	if req.Verify != "" {
		if !filepath.IsAbs(req.Verify) {
			return o, httpapi.Errorf(http.StatusBadRequest, "the verify script must be an absolute path on the server host", "give --verify /path/on/the/server/script (it runs on the server, not where lifeboat runs)")
		}
		st, err := os.Stat(req.Verify)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return o, httpapi.Errorf(http.StatusBadRequest, "no executable verify script "+req.Verify+" on the server host", "the script runs on the server: copy it there and make it executable (chmod +x)")
		}
		o.Verify = req.Verify
	}
	if req.Out != "" && !filepath.IsAbs(req.Out) {
		return o, httpapi.Errorf(http.StatusBadRequest, "out must be an absolute directory", "give --out DIR: a directory on the server host, or no --out for a temporary one")
	}
	o.Keep = req.Keep
	return o, nil
}

// bootTest materializes a machine's disks at a point and boots them. The
// images go to req.Out (kept) or a temporary directory (removed, unless
// the VM is kept: then VMs.Stop removes it). A guest that does not come
// up is a result with Pass false; the error is for what kept the test
// from running. Neither the machine's record nor its replica is written.
func (d *Drills) bootTest(ctx context.Context, m string, req api.BootTestRequest, drill bool) (res api.BootResult, err error) {
	start := time.Now()
	o, err := checkBootRequest(req)
	if err != nil {
		return res, err
	}
	if req.Point == "" {
		return res, httpapi.Errorf(http.StatusBadRequest, "no point given", "give --point ID, latest or latest-app")
	}
	pts, err := d.f.m.Points(ctx, m)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	pt, err := selectPoint(pts, req.Point, m)
	if err != nil {
		return res, err
	}
	kind := "test"
	if drill {
		kind = "drill"
	}
	id := start.UTC().Format("20060102T150405.000Z") + "-" + kind
	recDir := filepath.Join(d.dir, BootRecordsDir, m, id)
	if err := os.MkdirAll(recDir, 0o755); err != nil {
		return res, fmt.Errorf("boot record: %w", err)
	}
	out, temp := req.Out, req.Out == ""
	if temp {
		out = filepath.Join(d.dir, bootTmpDir, m+"-"+id)
	}
	res = api.BootResult{Machine: m, Point: pt, Drill: drill, Started: start.UTC(), Net: orNone(req.Net), Verify: req.Verify,
		VerifyExit: -1, Priority: boot.Priority}
	if !temp {
		res.Out = out
	}
	keptVM := false
	defer func() {
		if temp && !keptVM {
			if rerr := os.RemoveAll(out); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove temporary images: %w", rerr))
			}
		}
		d.pruneRecords(m)
	}()
	log := d.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, m, httpapi.LogPoint, pt.ID)
	log.Info("boot test: materializing", "drill", drill, "out", out, "priority", boot.Priority)
	t0 := time.Now()
	imgs, err := lowPriority(func() ([]store.Image, error) { return d.f.store.Materialize(ctx, m, pt.ID, out) })
	res.MaterializeSeconds = time.Since(t0).Seconds()
	if err != nil {
		return res, materializeError(err)
	}
	for _, im := range imgs {
		res.Images = append(res.Images, api.Image{Disk: im.Disk, Path: im.Path, Size: im.Size})
		o.Disks = append(o.Disks, im.Path)
	}
	o.Point, o.LogDir, o.TempDir = pt.ID, recDir, filepath.Join(d.dir, bootTmpDir)
	if err := os.MkdirAll(o.TempDir, 0o755); err != nil {
		return res, fmt.Errorf("boot: %w", err)
	}
	log.Info("boot test: booting", "drill", drill, "images", len(imgs))
	br, err := d.boot(ctx, o)
	fillBoot(&res, br)
	res.TotalSeconds = time.Since(start).Seconds()
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return res, err
		}
		var h interface{ Hint() string }
		hint := "see the server's log"
		if errors.As(err, &h) {
			hint = h.Hint()
		}
		return res, &httpapi.Error{Status: http.StatusInternalServerError, Msg: "boot: " + err.Error(), Remedy: hint, Err: err}
	}
	if br.VM != nil {
		keptVM = true
		vm := api.VM{ID: br.VM.Name, Machine: m, Point: pt.ID, Started: start.UTC(), Pid: br.VM.Pid,
			ConsoleSocket: br.VM.ConsoleSocket, ConsoleLog: br.VM.ConsoleLog, HostPort: br.VM.HostPort, Out: out}
		res.VM = &vm
		d.vms.add(vm, br.VM, temp)
	}
	log.Info("boot test: done", "drill", drill, "pass", res.Pass, "reason", res.Reason, "bus", res.Bus,
		"boot_to_ready", res.BootToReadySeconds, "verify_exit", res.VerifyExit, "console_log", res.ConsoleLog)
	return res, nil
}

// fillBoot copies the boot's result into res.
func fillBoot(res *api.BootResult, br boot.Result) {
	res.Pass, res.Reason = br.Pass, br.Reason
	res.Firmware, res.Bus, res.Accel = string(br.Firmware), string(br.Bus), string(br.Accel)
	if br.Priority != "" {
		res.Priority = br.Priority
	}
	res.BootToReadySeconds = br.BootToReady.Seconds()
	res.VerifySeconds = br.VerifyTook.Seconds()
	res.VerifyExit, res.VerifyOutput = br.VerifyExit, br.VerifyOutput
	res.ConsoleLog = br.ConsoleLog
	res.Buses = res.Buses[:0]
	for _, a := range br.Attempts {
		res.Buses = append(res.Buses, string(a.Bus))
	}
	if br.ConsoleLog != "" {
		if b, err := os.ReadFile(br.ConsoleLog); err == nil {
			res.ConsoleTail = boot.Tail(string(b), 15)
		}
	}
}

func orNone(n string) string {
	if n == "" {
		return api.BootNetNone
	}
	return n
}

// pruneRecords keeps the newest keepRecords boot records of a machine.
func (d *Drills) pruneRecords(m string) {
	dir := filepath.Join(d.dir, BootRecordsDir, m)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= keepRecords {
		return
	}
	// Names start with the time: sorted oldest first.
	for _, e := range ents[:len(ents)-keepRecords] {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
