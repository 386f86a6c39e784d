package configsrv

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery/boot"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/store"
)

// fakeMachines has one machine with two points; writes to its record fail
// the test (a boot test must never write it).
type fakeMachines struct{ t *testing.T }

func (f fakeMachines) Param(r *http.Request) (string, error) { return r.PathValue("m"), nil }
func (f fakeMachines) Get(name string) (machines.Record, bool) {
	return machines.Record{Name: name}, true
}

func (f fakeMachines) UpdateErr(name string, fn func(m *machines.Record) error) error {
	f.t.Errorf("machine record of %s written", name)
	return errors.New("no")
}

func (f fakeMachines) Points(ctx context.Context, m string) ([]api.Point, error) {
	return []api.Point{{ID: "p1", Materializable: true}, {ID: "p2", Materializable: true}}, nil
}

func (f fakeMachines) Status(ctx context.Context, m string) (api.Machine, error) {
	return api.Machine{Name: m}, nil
}

// fakeStore writes one small image.
type fakeStore struct{}

func (fakeStore) Materialize(ctx context.Context, machine, pointID, outDir string) ([]store.Image, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(outDir, "sda.img")
	if err := os.WriteFile(p, []byte(pointID), 0o644); err != nil {
		return nil, err
	}
	return []store.Image{{Disk: "sda", Path: p, Size: 2}}, nil
}

func newTestDrills(t *testing.T, b BootFunc) (*Drills, string) {
	dir := t.TempDir()
	f := NewFailovers(fakeMachines{t}, fakeStore{}, nil, nil)
	d, err := NewDrills(DrillOptions{DataDir: dir, Failovers: f, Boot: b, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

// TestDrillScheduleAndRecord: a policy makes the scheduler run a drill of
// the latest point at once, one at a time; its result is recorded and
// survives a restart; the temporary images are gone after.
func TestDrillScheduleAndRecord(t *testing.T) {
	var running, maxRunning, calls atomic.Int32
	var lastDisk atomic.Value
	b := func(ctx context.Context, o boot.Options) (boot.Result, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		lastDisk.Store(o.Disks[0])
		if _, err := os.Stat(o.Disks[0]); err != nil {
			t.Errorf("image to boot: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		log := filepath.Join(o.LogDir, "console.log")
		os.WriteFile(log, []byte("login:\n"), 0o644)
		return boot.Result{Pass: o.Point == "p2", Reason: "wrong point", Bus: boot.BusVirtio, ConsoleLog: log,
			BootToReady: time.Second, Attempts: []boot.Attempt{{Bus: boot.BusVirtio}}}, nil
	}
	d, dir := newTestDrills(t, b)
	now := time.Now().UTC()
	d.mu.Lock()
	d.recs["a"] = &drillRecord{Policy: api.DrillPolicy{IntervalSeconds: 3600}, Since: &now}
	d.recs["b"] = &drillRecord{Policy: api.DrillPolicy{IntervalSeconds: 3600}, Since: &now}
	d.recs["c"] = &drillRecord{} // off
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if calls.Load() != 2 {
		t.Fatalf("%d drills run, want 2 (a and b, once each in the interval)", calls.Load())
	}
	if maxRunning.Load() != 1 {
		t.Errorf("%d drills ran at once", maxRunning.Load())
	}
	if _, err := os.Stat(lastDisk.Load().(string)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary image left: %v", err)
	}
	d2, err := NewDrills(DrillOptions{DataDir: dir, Failovers: d.f, Boot: b})
	if err != nil {
		t.Fatal(err)
	}
	sts := d2.Statuses()
	if len(sts) != 3 || sts[0].LastDrill == nil || !sts[0].LastDrill.Pass || sts[0].LastDrill.Point.ID != "p2" || sts[0].LastPass == nil {
		t.Fatalf("statuses after restart: %+v", sts)
	}
	if sts[0].Next == nil || sts[0].Next.Sub(sts[0].LastDrill.Started) != time.Hour {
		t.Errorf("next drill %v, last %v", sts[0].Next, sts[0].LastDrill.Started)
	}
	if sts[2].LastDrill != nil || sts[2].Next != nil {
		t.Errorf("machine without drills: %+v", sts[2])
	}
}

// TestDrillFailureRecorded: a drill that cannot even run (an error, not a
// failed boot) is a failed drill with the reason.
func TestDrillFailureRecorded(t *testing.T) {
	d, _ := newTestDrills(t, func(ctx context.Context, o boot.Options) (boot.Result, error) {
		return boot.Result{}, api.Errorf("install qemu-system-x86", "boot: qemu-system-x86_64 not found")
	})
	res := d.RunDrill(context.Background(), "a")
	if res.Pass || res.Reason == "" || !res.Drill {
		t.Fatalf("result %+v", res)
	}
	if st := d.Statuses(); len(st) != 1 || st[0].LastDrill == nil || st[0].LastDrill.Pass || st[0].LastPass != nil {
		t.Fatalf("status %+v", st)
	}
}

func TestCheckBootRequest(t *testing.T) {
	for _, tc := range []struct {
		req api.BootTestRequest
		ok  bool
	}{
		{api.BootTestRequest{Point: "latest"}, true},
		{api.BootTestRequest{Net: "isolated", GuestPort: 80, Ready: "up$"}, true},
		{api.BootTestRequest{Net: "bridge"}, false},
		{api.BootTestRequest{Ready: "("}, false},
		{api.BootTestRequest{Verify: "relative.sh"}, false},
		{api.BootTestRequest{Verify: "/nonexistent/verify.sh"}, false},
		{api.BootTestRequest{Out: "rel/dir"}, false},
		{api.BootTestRequest{TimeoutSeconds: -1}, false},
	} {
		_, err := checkBootRequest(tc.req)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: error %v", tc.req, err)
		}
	}
	if err := checkDrillPolicy(api.DrillPolicy{IntervalSeconds: 5}); err == nil {
		t.Error("a 5 s drill interval was accepted")
	}
}

// TestDrillRunNowNotTwice: a drill run now counts for the schedule: the
// scheduler does not run the same machine again right after.
func TestDrillRunNowNotTwice(t *testing.T) {
	var calls atomic.Int32
	d, _ := newTestDrills(t, func(ctx context.Context, o boot.Options) (boot.Result, error) {
		calls.Add(1)
		return boot.Result{Pass: true}, nil
	})
	now := time.Now().UTC()
	d.mu.Lock()
	d.recs["a"] = &drillRecord{Policy: api.DrillPolicy{IntervalSeconds: 3600}, Since: &now}
	d.mu.Unlock()
	if res := d.RunDrill(context.Background(), "a"); !res.Pass {
		t.Fatalf("drill: %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	d.Run(ctx)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d drills, want 1", n)
	}
}
