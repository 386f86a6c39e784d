package config

import (
	"fmt"
	"strings"
)

// MinRate is the lowest rate a bandwidth limit takes: below it a segment
// of a few MiB would take minutes to send and every status would show the
// disk as stalled.
const MinRate = 64 << 10

// Rate is a flag.Value for a transfer rate in bytes per second: a size as
// ParseBytes reads it (20MiB, 1.5GB, 1048576), optionally followed by
// "/s"; 0, "off", "none" or "unlimited" mean no limit.
type Rate int64

func (r *Rate) String() string { return FormatRate(int64(*r)) }

// Get returns the int64 bytes per second (flag.Getter).
func (r *Rate) Get() any { return int64(*r) }

// Type names the value in pflag's help.
func (r *Rate) Type() string { return "rate" }

// Set parses a rate (ParseRate).
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = Rate(v)
	return nil
}

// ParseRate parses a rate in bytes per second: "20MiB", "20MiB/s",
// "2.5MB/s", "0" or "unlimited" (0: no limit). A rate under MinRate is
// refused, with what to give instead.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "0", "off", "none", "unlimited":
		return 0, nil
	}
	t = strings.TrimSpace(strings.TrimSuffix(t, "/s"))
	v, err := ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a rate: give bytes per second as a size, e.g. 20MiB or 20MiB/s (KiB, MiB, GiB; or kB, MB, GB), or unlimited", s)
	}
	if v == 0 {
		return 0, nil
	}
	if v < MinRate {
		return 0, fmt.Errorf("%q is below the lowest limit of %s/s: give at least %s, or unlimited", s, FormatBytes(MinRate), FormatBytes(MinRate))
	}
	return v, nil
}

// FormatRate prints a rate the way ParseRate reads it back: "20MiB/s", or
// "unlimited" for 0.
func FormatRate(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return FormatBytes(n) + "/s"
}
