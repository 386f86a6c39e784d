package config

import (
	"strings"
	"testing"
)

func TestRateParsesSizesPerSecond(t *testing.T) {
	for in, want := range map[string]int64{
		"20MiB":     20 << 20,
		"20MiB/s":   20 << 20,
		" 1.5 GB/s": 1.5e9,
		"1048576":   1 << 20,
		"0":         0,
		"unlimited": 0,
		"off":       0,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, says := range map[string]string{
		"fast":   "20MiB/s",
		"1KiB/s": "at least 64KiB",
		"":       "not a rate",
	} {
		if _, err := ParseRate(in); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseRate(%q): %v, want an error saying %q", in, err, says)
		}
	}
	for n, want := range map[int64]string{0: "unlimited", 10 << 20: "10MiB/s"} {
		if got := FormatRate(n); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", n, got, want)
		}
		back, err := ParseRate(FormatRate(n))
		if err != nil || back != n {
			t.Errorf("ParseRate(FormatRate(%d)) = %d, %v", n, back, err)
		}
	}
}
