package agent

import (
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestStallProblems: a process server that stops answering, and an RPO lag
// over the threshold, are problems although no request failed (issue 18,
// item 2).
func TestStallProblems(t *testing.T) {
	now := time.Now()
	ds := DiskStatus{Name: "sda"}
	ds.Spool.Queued = 7
	cases := []struct {
		name    string
		ds      func() DiskStatus
		state   DiskState
		waiting time.Time
		want    []string
	}{
		{"idle", func() DiskStatus { return ds }, StateProtected, time.Time{}, nil},
		{"waiting briefly", func() DiskStatus { return ds }, StateProtected, now.Add(-10 * time.Second), nil},
		{"stalled", func() DiskStatus { return ds }, StateProtected, now.Add(-3 * time.Minute), []string{ProblemServerStalled}},
		{"stalled with an error shown", func() DiskStatus { d := ds; d.Spool.LastError = "refused"; return d }, StateProtected, now.Add(-3 * time.Minute), nil},
		{"lag over", func() DiskStatus { d := ds; d.Lag.Current = 1000; return d }, StateProtected, time.Time{}, []string{ProblemLagExceeded}},
		{"lag during initial sync", func() DiskStatus { d := ds; d.Lag.Current = 1000; return d }, StateInitialSync, time.Time{}, nil},
		{"both", func() DiskStatus { d := ds; d.Lag.Current = 1000; return d }, StateProtected, now.Add(-time.Hour), []string{ProblemServerStalled, ProblemLagExceeded}},
	}
	for _, c := range cases {
		ps := stallProblems(c.ds(), c.state, "ps:9443", c.waiting, now, 2*time.Minute, 15*time.Minute, api.AgentBandwidth{})
		var got []string
		for _, p := range ps {
			got = append(got, p.Code)
			if p.Remedy == "" || p.Disk != "sda" {
				t.Errorf("%s: problem without remedy or disk: %+v", c.name, p)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: problems %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: problems %v, want %v", c.name, got, c.want)
			}
		}
	}
	if ps := stallProblems(ds, StateProtected, "ps", now.Add(-time.Hour), now, -1, -1, api.AgentBandwidth{}); len(ps) != 0 {
		t.Errorf("negative thresholds: %v", ps)
	}
}
