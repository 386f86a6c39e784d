package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestMachinesShowAlerts: 'lifeboat machines' lists a machine's alerts in
// its table, each with its remedy, and --json carries them.
func TestMachinesShowAlerts(t *testing.T) {
	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	cfg.AlertHeartbeat = 200 * time.Millisecond
	cfg.AlertInterval = 50 * time.Millisecond
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, "web1")
	if _, err := a.Process.SetMachine(context.Background(), []api.DiskSpec{{Name: "sda", Size: diskSize}}); err != nil {
		t.Fatal(err)
	}
	var ms []api.Machine
	servertest.WaitFor(t, "heartbeat-lost in machines --json", func() bool {
		if err := json.Unmarshal([]byte(mustRun(t, nil, "--data", dir, "machines", "--json")), &ms); err != nil {
			t.Fatal(err)
		}
		return len(ms) == 1 && len(ms[0].Alerts) > 0
	})
	if al := ms[0].Alerts[0]; al.Alert != api.AlertHeartbeat || al.Machine != "web1" || al.Remedy == "" {
		t.Errorf("alert: %+v", al)
	}
	out := mustRun(t, nil, "--data", dir, "machines")
	for _, want := range []string{"ALERTS", "heartbeat-lost", "ALERT heartbeat-lost web1 (critical", "remedy: check that lifeboat-agent runs"} {
		if !strings.Contains(out, want) {
			t.Errorf("machines output lacks %q:\n%s", want, out)
		}
	}
}
