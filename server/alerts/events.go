package alerts

import (
	"fmt"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Alerts raised by an event rather than by a condition the Monitor
// evaluates: each stays active for its hold time after the last event of
// its kind, machine and disk.

// Hold times of the event alerts.
const (
	HoldSegmentConflict   = 24 * time.Hour
	HoldRegistrationBurst = time.Hour
)

const (
	remedySegmentConflict = "the agent resyncs the disk (compare with the replica, send what differs); another holder of the machine's key may have sent the segment: if the key may be stolen, revoke the machine ('lifeboat machines revoke') and register it again"
	remedyRegistration    = "someone is guessing the registration passphrase or a token from this address: block it at the firewall; attempts are slowed down per address; if the passphrase may be known, replace DATA/passphrase and restart the server"
)

type noted struct {
	alert api.Alert
	until time.Time
}

// Note raises alert a (its Since is set when raised) until hold has
// passed since the last Note of the same kind, machine and disk.
func (s *Monitor) Note(a api.Alert, hold time.Duration) {
	s.amu.Lock()
	if s.noted == nil {
		s.noted = make(map[alertKey]noted)
	}
	s.noted[alertKey{a.Alert, a.Machine, a.Disk}] = noted{alert: a, until: time.Now().Add(hold)}
	s.amu.Unlock()
	s.kickAlerts()
}

// SegmentConflict raises AlertSegmentConflict for a disk (process.Events).
func (s *Monitor) SegmentConflict(machine, disk string, seq uint64) {
	s.Note(api.Alert{Alert: api.AlertSegmentConflict, Machine: machine, Disk: disk, Severity: api.SeverityCritical,
		Message: fmt.Sprintf("disk %s: segment %d sent with content that differs from the segment %d accepted; refused", disk, seq, seq),
		Remedy:  remedySegmentConflict}, HoldSegmentConflict)
}

// RegistrationBurst raises AlertRegistrationBurst for a source address
// (configsrv.Limiter's alert).
func (s *Monitor) RegistrationBurst(source string, failures int, window time.Duration) {
	s.Note(api.Alert{Alert: api.AlertRegistrationBurst, Severity: api.SeverityCritical,
		Message: fmt.Sprintf("%d failed registration attempts from %s within %s", failures, source, window),
		Remedy:  remedyRegistration}, HoldRegistrationBurst)
}

// notedConditions returns the event alerts still held, and forgets the
// others. s.amu must be held.
func (s *Monitor) notedConditions(now time.Time) []api.Alert {
	var out []api.Alert
	for k, n := range s.noted {
		if now.After(n.until) {
			delete(s.noted, k)
			continue
		}
		out = append(out, n.alert)
	}
	return out
}
