package alerts

import (
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Drills is what the drill alerts read: every machine's drill policy and
// last results (configsrv.Drills).
type Drills interface {
	Statuses() []api.DrillStatus
}

// Remedies of the drill alerts.
const (
	remedyDrillFailed  = "read the drill's reason and console log ('lifeboat drill show MACHINE'); run 'lifeboat failover MACHINE --point latest --test --boot' to try again by hand; a later passing drill clears the alert"
	remedyDrillOverdue = "drills of this machine do not pass or do not run: check 'lifeboat drill MACHINE' and the server's log (a drill runs one at a time, after any running one)"
)

// drillConditions: the last drill failed; no drill passed within twice
// the interval (from the policy's start or the last pass).
func drillConditions(ds Drills, now time.Time) []api.Alert {
	if ds == nil {
		return nil
	}
	var out []api.Alert
	for _, st := range ds.Statuses() {
		if l := st.LastDrill; l != nil && !l.Pass {
			out = append(out, api.Alert{Alert: api.AlertDrillFailed, Machine: st.Machine, Severity: api.SeverityCritical,
				Message: fmt.Sprintf("drill at point %s (%s) failed: %s; console log %s", l.Point.ID, l.Started.Format(time.RFC3339), l.Reason, l.ConsoleLog),
				Remedy:  remedyDrillFailed})
		}
		iv := time.Duration(st.Policy.IntervalSeconds * float64(time.Second))
		if iv <= 0 || st.Since == nil {
			continue
		}
		from, what := *st.Since, "since the drill policy was set"
		if st.LastPass != nil && st.LastPass.After(from) {
			from, what = *st.LastPass, "since the last passing drill"
		}
		if age := now.Sub(from); age > 2*iv {
			out = append(out, api.Alert{Alert: api.AlertDrillOverdue, Machine: st.Machine, Severity: api.SeverityCritical,
				Message: fmt.Sprintf("no passing drill for %s %s (%s), over twice the drill interval of %s", fmtAge(age), what, from.Format(time.RFC3339), iv),
				Remedy:  remedyDrillOverdue})
		}
	}
	return out
}

// Kick asks the alert loop to evaluate now (after a drill).
func (s *Monitor) Kick() { s.kickAlerts() }
