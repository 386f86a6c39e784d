package uploader

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/config"
)

// Window is one entry of a bandwidth schedule: from Start to End (minutes
// after midnight, End up to 24*60; End before Start runs past midnight)
// on the days of Days, at Rate bytes per second (0: no limit).
//
// Its text form is "[DAYS ]HH:MM-HH:MM=RATE": DAYS is a day (Mon) or a
// range of days (Mon-Fri, Fri-Mon), every day when absent; RATE is what
// config.ParseRate takes (10MiB, 10MiB/s, unlimited). A window that runs
// past midnight belongs to the day it starts.
type Window struct {
	Days       [7]bool // by time.Weekday
	Start, End int     // minutes after midnight
	Rate       int64
	text       string
}

func (w Window) String() string { return w.text }

// Schedule is a week of bandwidth limits: at any minute at most one
// window applies; outside every window the agent's own limit does.
type Schedule []Window

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWindow parses one window of a schedule ("Mon-Fri 08:00-18:00=10MiB").
func ParseWindow(s string) (Window, error) {
	text := strings.Join(strings.Fields(s), " ")
	w := Window{text: text}
	bad := func(format string, a ...any) (Window, error) {
		return Window{}, fmt.Errorf("bandwidth schedule window %q: %s (the form is [DAYS ]HH:MM-HH:MM=RATE, e.g. \"Mon-Fri 08:00-18:00=10MiB\")", s, fmt.Sprintf(format, a...))
	}
	spec, rate, ok := strings.Cut(text, "=")
	if !ok {
		return bad("no \"=RATE\"")
	}
	r, err := config.ParseRate(rate)
	if err != nil {
		return bad("%v", err)
	}
	w.Rate = r
	fields := strings.Fields(spec)
	var span string
	switch len(fields) {
	case 1:
		span = fields[0]
		for i := range w.Days {
			w.Days[i] = true
		}
	case 2:
		if w.Days, err = parseDays(fields[0]); err != nil {
			return bad("%v", err)
		}
		span = fields[1]
	default:
		return bad("expected DAYS and a time span before \"=\"")
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return bad("time span %q has no \"-\" (give HH:MM-HH:MM)", span)
	}
	if w.Start, err = parseClock(from, false); err != nil {
		return bad("%v", err)
	}
	if w.End, err = parseClock(to, true); err != nil {
		return bad("%v", err)
	}
	if w.Start == w.End {
		return bad("the span is empty (for a whole day give 00:00-24:00)")
	}
	return w, nil
}

func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	day := func(d string) (int, error) {
		for i, n := range dayNames {
			if strings.EqualFold(d, n) || len(d) > 3 && strings.HasPrefix(strings.ToLower(d), n) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%q is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun, or a range such as Mon-Fri)", d)
	}
	from, to, isRange := strings.Cut(s, "-")
	a, err := day(from)
	if err != nil {
		return days, err
	}
	b := a
	if isRange {
		if b, err = day(to); err != nil {
			return days, err
		}
	}
	for i := a; ; i = (i + 1) % 7 {
		days[i] = true
		if i == b {
			break
		}
	}
	return days, nil
}

func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && (mm != 0 || !end) {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM, 00:00 to 23:59; 24:00 only as an end)", s)
	}
	return hh*60 + mm, nil
}

// minutes calls f with every minute of the week (0 = Sunday 00:00) the
// window covers.
func (w Window) minutes(f func(int)) {
	length := w.End - w.Start
	if length <= 0 {
		length += 24 * 60
	}
	for d, on := range w.Days {
		if !on {
			continue
		}
		for i := 0; i < length; i++ {
			f((d*24*60 + w.Start + i) % weekMinutes)
		}
	}
}

const weekMinutes = 7 * 24 * 60

// ParseSchedule parses windows (each as ParseWindow takes it) and refuses
// windows that overlap.
func ParseSchedule(specs []string) (Schedule, error) {
	var s Schedule
	owner := make([]int, weekMinutes) // index+1 of the window covering each minute
	var errs []error
	for _, spec := range specs {
		w, err := ParseWindow(spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		idx := len(s)
		clash := -1
		at := 0
		w.minutes(func(m int) {
			if owner[m] != 0 && clash < 0 {
				clash, at = owner[m]-1, m
			}
			owner[m] = idx + 1
		})
		if clash >= 0 {
			errs = append(errs, fmt.Errorf("bandwidth schedule: %q overlaps %q on %s at %02d:%02d: give windows that do not overlap",
				w.text, s[clash].text, strings.ToUpper(dayNames[at/(24*60)][:1])+dayNames[at/(24*60)][1:], at%(24*60)/60, at%60))
			continue
		}
		s = append(s, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// At returns the window in force at t (in t's location), if any.
func (s Schedule) At(t time.Time) (Window, bool) {
	m := minuteOfWeek(t)
	for _, w := range s {
		if w.covers(m) {
			return w, true
		}
	}
	return Window{}, false
}

// covers reports whether the window covers minute m of the week.
func (w Window) covers(m int) bool {
	length := w.End - w.Start
	if length <= 0 {
		length += 24 * 60
	}
	for d, on := range w.Days {
		if on && ((m-d*24*60-w.Start)%weekMinutes+weekMinutes)%weekMinutes < length {
			return true
		}
	}
	return false
}

// NextChange returns when the window in force after t next changes (a
// window starts or ends), zero when the schedule never changes.
func (s Schedule) NextChange(t time.Time) time.Time {
	if len(s) == 0 {
		return time.Time{}
	}
	owner := make([]int, weekMinutes)
	for i, w := range s {
		w.minutes(func(m int) { owner[m] = i + 1 })
	}
	m := minuteOfWeek(t)
	for i := 1; i <= weekMinutes; i++ {
		if owner[(m+i)%weekMinutes] != owner[m] {
			// Wall-clock minutes, so a change of daylight saving time
			// keeps the windows at their local times.
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute()+i, 0, 0, t.Location())
		}
	}
	return time.Time{}
}

func minuteOfWeek(t time.Time) int {
	return int(t.Weekday())*24*60 + t.Hour()*60 + t.Minute()
}

// Strings returns the windows' text forms.
func (s Schedule) Strings() []string {
	out := make([]string, 0, len(s))
	for _, w := range s {
		out = append(out, w.text)
	}
	return out
}
