package uploader

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleWindows(t *testing.T) {
	s, err := ParseSchedule([]string{"Mon-Fri 08:00-18:00=10MiB", "22:00-06:00=unlimited", "Sat 10:00-12:00=1MiB/s"})
	if err != nil {
		t.Fatal(err)
	}
	at := func(day, hh, mm int) time.Time { // 2026-12-06 is a Sunday
		return time.Date(2026, 12, 6+day, hh, mm, 0, 0, time.UTC)
	}
	for _, c := range []struct {
		t    time.Time
		ok   bool
		rate int64
	}{
		{at(1, 8, 0), true, 10 << 20},   // Monday 08:00: starts
		{at(1, 17, 59), true, 10 << 20}, // Monday 17:59
		{at(1, 18, 0), false, 0},        // ends at 18:00
		{at(0, 12, 0), false, 0},        // Sunday noon
		{at(6, 11, 0), true, 1 << 20},   // Saturday 11:00
		{at(3, 23, 0), true, 0},         // Wednesday night: no limit
		{at(4, 5, 59), true, 0},         // past midnight, started the day before
	} {
		w, ok := s.At(c.t)
		if ok != c.ok || ok && w.Rate != c.rate {
			t.Errorf("At(%s) = %v %v, want %v rate %d", c.t.Format("Mon 15:04"), w, ok, c.ok, c.rate)
		}
	}
	if got, want := s.NextChange(at(1, 12, 30)), at(1, 18, 0); !got.Equal(want) {
		t.Errorf("NextChange(Mon 12:30) = %s, want %s", got, want)
	}
	if got, want := s.NextChange(at(1, 18, 0)), at(1, 22, 0); !got.Equal(want) {
		t.Errorf("NextChange(Mon 18:00) = %s, want %s", got, want)
	}
}

func TestScheduleErrors(t *testing.T) {
	for spec, says := range map[string]string{
		"08:00-18:00":               `no "=RATE"`,
		"8-18=10MiB":                "not a time of day",
		"Mon-Fri 08:00-25:00=1MiB":  "not a time of day",
		"Mon-Fry 08:00-18:00=1MiB":  "not a day",
		"08:00-08:00=1MiB":          "empty",
		"08:00-18:00=fast":          "not a rate",
		"08:00-18:00=1KiB":          "at least 64KiB",
		"Mon Tue 08:00-18:00=10MiB": "DAYS and a time span",
	} {
		_, err := ParseSchedule([]string{spec})
		if err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "HH:MM-HH:MM=RATE") {
			t.Errorf("ParseSchedule(%q): %v, want an error saying %q and the form", spec, err, says)
		}
	}
	_, err := ParseSchedule([]string{"Mon-Fri 08:00-18:00=10MiB", "Wed 17:00-19:00=1MiB"})
	if err == nil || !strings.Contains(err.Error(), "overlaps") || !strings.Contains(err.Error(), "Wed at 17:00") {
		t.Errorf("overlapping windows: %v", err)
	}
	if _, err := ParseSchedule([]string{"00:00-24:00=1MiB"}); err != nil {
		t.Errorf("a whole day: %v", err)
	}
}

func TestLimiterPrecedence(t *testing.T) {
	s, err := ParseSchedule([]string{"08:00-18:00=1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	l := NewLimiter(8<<20, s)
	l.now = func() time.Time { return now }
	if st := l.Status(); st.Limit != 1<<20 || st.Source != "schedule" || st.Window != "08:00-18:00=1MiB" {
		t.Errorf("in the window: %+v", st)
	}
	now = now.Add(10 * time.Hour)
	if st := l.Status(); st.Limit != 8<<20 || st.Source != "limit" {
		t.Errorf("outside the window: %+v", st)
	}
	l.SetOverride(0, now.Add(time.Hour))
	if st := l.Status(); st.Limit != 0 || st.Source != "override" || !st.NextChange.Equal(now.Add(time.Hour)) {
		t.Errorf("override: %+v", st)
	}
	now = now.Add(2 * time.Hour)
	if st := l.Status(); st.Source != "limit" || st.Override != nil {
		t.Errorf("after the override's end: %+v", st)
	}
}
