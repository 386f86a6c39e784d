package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestBytesParsesCountsAndUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, // byte counts keep working
		"1GiB":       1 << 30,
		"512 MiB":    512 << 20,
		"1GB":        1e9,
		"0":          0,
	} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	_, err := ParseBytes("lots")
	if err == nil || !strings.Contains(err.Error(), "GiB") {
		t.Errorf("ParseBytes(lots): %v, want an error naming the units", err)
	}
	for n, want := range map[int64]string{1 << 30: "1GiB", 512 << 20: "512MiB", 100: "100B", 1536 << 20: "1536MiB", 1<<30 + 1: "1.0 GiB"} {
		got := FormatBytes(n)
		if got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseBytes(got); err != nil || (back != n && !strings.Contains(got, ".")) {
			t.Errorf("FormatBytes(%d) = %q does not read back: %d, %v", n, got, back, err)
		}
	}
}

func TestDurationWithoutUnitSaysWhichUnits(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var d time.Duration
	DurationVar(fs, &d, "point-interval", time.Minute, "")
	err := fs.Set("point-interval", "30")
	if err == nil || !strings.Contains(err.Error(), "no unit") || !strings.Contains(err.Error(), "30s") {
		t.Fatalf("bare number: %v", err)
	}
	if err := fs.Set("point-interval", "90s"); err != nil || d != 90*time.Second {
		t.Fatalf("90s: %v, %v", d, err)
	}
	// From a file the same message reaches the operator.
	var sz int64
	BytesVar(fs, &sz, "spool-bytes", 1<<30, "")
	src, err := Apply(fs, Options{File: write(t, "spool-bytes = \"2GiB\"\n")})
	if err != nil || sz != 2<<30 || src["spool-bytes"] != FromFile {
		t.Fatalf("spool-bytes from file: %d, %v", sz, err)
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	DurationVar(fs2, &d, "point-interval", time.Minute, "")
	_, err = Apply(fs2, Options{File: write(t, "point-interval = \"30\"\n")})
	if err == nil || !strings.Contains(err.Error(), "no unit") {
		t.Fatalf("point-interval = \"30\" in a file: %v", err)
	}
}
