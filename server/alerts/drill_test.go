package alerts

import (
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

type fakeDrills []api.DrillStatus

func (f fakeDrills) Statuses() []api.DrillStatus { return f }

func TestDrillConditions(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	hour := api.DrillPolicy{IntervalSeconds: 3600}
	pass := &api.BootResult{Pass: true, Started: *at(30 * time.Minute)}
	fail := &api.BootResult{Pass: false, Reason: "virtio bus: timeout", Started: *at(10 * time.Minute), Point: api.Point{ID: "p9"}}
	for _, tc := range []struct {
		name string
		st   api.DrillStatus
		want []string
	}{
		{"off, never run", api.DrillStatus{Machine: "m"}, nil},
		{"new policy, within 2x", api.DrillStatus{Machine: "m", Policy: hour, Since: at(90 * time.Minute)}, nil},
		{"new policy, no pass within 2x", api.DrillStatus{Machine: "m", Policy: hour, Since: at(121 * time.Minute)}, []string{api.AlertDrillOverdue}},
		{"recent pass", api.DrillStatus{Machine: "m", Policy: hour, Since: at(10 * time.Hour), LastDrill: pass, LastPass: at(30 * time.Minute)}, nil},
		{"last failed, pass recent", api.DrillStatus{Machine: "m", Policy: hour, Since: at(10 * time.Hour), LastDrill: fail, LastPass: at(90 * time.Minute)}, []string{api.AlertDrillFailed}},
		{"last failed, pass old", api.DrillStatus{Machine: "m", Policy: hour, Since: at(10 * time.Hour), LastDrill: fail, LastPass: at(3 * time.Hour)}, []string{api.AlertDrillFailed, api.AlertDrillOverdue}},
		{"failed run-now, drills off", api.DrillStatus{Machine: "m", LastDrill: fail}, []string{api.AlertDrillFailed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := drillConditions(fakeDrills{tc.st}, now)
			var kinds []string
			for _, a := range got {
				kinds = append(kinds, a.Alert)
				if a.Machine != "m" || a.Remedy == "" || a.Message == "" {
					t.Errorf("alert %+v", a)
				}
			}
			if len(kinds) != len(tc.want) {
				t.Fatalf("alerts %v, want %v", kinds, tc.want)
			}
			for i := range kinds {
				if kinds[i] != tc.want[i] {
					t.Fatalf("alerts %v, want %v", kinds, tc.want)
				}
			}
		})
	}
	if drillConditions(nil, now) != nil {
		t.Error("no drills, alerts")
	}
}
