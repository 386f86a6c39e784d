package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Duration is a flag.Value for a time span that says which units it takes
// when given a bare number ("30" is refused: 30s? 30m?).
type Duration time.Duration

// DurationVar defines a duration flag on fs.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var((*Duration)(p), name, usage)
}

func (d *Duration) String() string { return time.Duration(*d).String() }

// Get returns the time.Duration (flag.Getter).
func (d *Duration) Get() any { return time.Duration(*d) }

// Set parses a Go duration: 90s, 5m, 1h30m, 250ms.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil && s != "0" {
			return fmt.Errorf("%q has no unit: give one, e.g. %ss or %sm (units: ms, s, m, h)", s, s, s)
		}
		return fmt.Errorf("%q is not a duration: give a number and a unit, e.g. 30s, 5m, 1h30m (units: ms, s, m, h)", s)
	}
	*d = Duration(v)
	return nil
}

// Bytes is a flag.Value for a size: a plain byte count (as before) or a
// number with a unit, IEC (KiB, MiB, GiB, TiB) or SI (kB, MB, GB, TB),
// parsed and printed by one library (github.com/dustin/go-humanize), so
// every size of every command reads the same.
type Bytes int64

// BytesVar defines a size flag on fs.
func BytesVar(fs *flag.FlagSet, p *int64, name string, value int64, usage string) {
	*p = value
	fs.Var((*Bytes)(p), name, usage)
}

func (b *Bytes) String() string { return FormatBytes(int64(*b)) }

// Get returns the int64 byte count (flag.Getter).
func (b *Bytes) Get() any { return int64(*b) }

// Set parses a size: 1073741824, 1GiB, 512 MiB, 1.5GB.
func (b *Bytes) Set(s string) error {
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = Bytes(v)
	return nil
}

// ParseBytes parses a size: a byte count or a number with a unit
// (KiB, MiB, GiB, TiB: powers of 1024; kB, MB, GB, TB: powers of 1000).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size: give bytes or a number with a unit, e.g. 512MiB, 1GiB")
	}
	v, err := humanize.ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: give bytes or a number with a unit, e.g. 512MiB, 1GiB (KiB, MiB, GiB, TiB; or kB, MB, GB, TB)", s)
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return int64(v), nil
}

// FormatBytes prints a size the way ParseBytes reads it back: whole units
// exactly ("1GiB", "512MiB"), other sizes rounded with IEC units
// ("1.5 GiB").
func FormatBytes(n int64) string {
	if n < 0 {
		return "-" + FormatBytes(-n)
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	return humanize.IBytes(uint64(n))
}
