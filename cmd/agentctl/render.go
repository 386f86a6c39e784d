package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/config"
)

// view says how to draw: on a terminal with progress bars, or as plain
// lines for logs and scripts.
type view struct {
	tty   bool
	width int // columns of the terminal; 0: 80
}

// renderStatus prints a status for a human. Every time is shown relative
// to st.Time, so the same Status always prints the same text.
func renderStatus(w io.Writer, st api.AgentStatus, v view) {
	health := "healthy"
	if !st.Healthy {
		health = fmt.Sprintf("UNHEALTHY (%d %s)", len(st.Problems), plural(len(st.Problems), "problem", "problems"))
	}
	fmt.Fprintf(w, "machine %s: %s\n", st.Machine, health)
	boot := st.BootID
	fmt.Fprintf(w, "  agent        up %s, kernel %s, boot id %s\n", st.Uptime, orUnknown(st.Kernel), orUnknown(boot))
	fmt.Fprintf(w, "  server       %s\n", serverLine(st))
	if b := st.Bandwidth; b.Source != "" && b.Source != api.BandwidthNone || b.Override != nil || len(b.Schedule) > 0 {
		fmt.Fprintf(w, "  bandwidth    %s\n", bandwidthLine(b, st.Time))
	}
	if c := st.Certificate; c != nil {
		warn := ""
		switch {
		case c.DaysLeft < 0 || !st.Time.Before(c.NotAfter):
			warn = "  EXPIRED"
		case c.DaysLeft < api.AgentCertWarnDays:
			warn = "  EXPIRES SOON"
		}
		fmt.Fprintf(w, "  certificate  %s, valid until %s (%d days)%s\n", c.Subject, c.NotAfter.UTC().Format(time.DateOnly), c.DaysLeft, warn)
	} else {
		fmt.Fprintln(w, "  certificate  unknown")
	}
	fmt.Fprintf(w, "  tracker      generation %d, %d %s in flight, pins in %s\n", st.Tracker.Generation, st.Tracker.InFlight,
		plural(int(st.Tracker.InFlight), "write", "writes"), st.Tracker.PinDir)
	if len(st.Tracker.Programs) > 0 {
		var ps []string
		for _, p := range st.Tracker.Programs {
			ps = append(ps, fmt.Sprintf("%s=%d", p.Name, p.ID))
		}
		fmt.Fprintf(w, "  bpf programs %s\n", strings.Join(ps, " "))
	}
	fmt.Fprintf(w, "  last point   %s\n", pointLine(st.LastPoint, st.Time))
	fmt.Fprintf(w, "  last app     %s\n", pointLine(st.LastApp, st.Time))
	if g := st.Group; g != nil && g.Name != "" {
		last := "last group point " + pointLine(g.LastPoint, st.Time)
		if g.LastError != "" {
			last = "last group point FAILED: " + g.LastError
		}
		fmt.Fprintf(w, "  group        %s (%s; coordinator %s), listening on %s; %s\n", g.Name, strings.Join(g.Machines, ", "), g.Coordinator, g.Listen, last)
	}
	for _, d := range st.Disks {
		fmt.Fprintf(w, "\ndisk %s (%s, %s): %s\n", d.Name, d.Path, bytesString(d.Size), d.State)
		if d.Sync != nil {
			fmt.Fprintf(w, "  %s\n", syncLine(d, v))
		}
		fmt.Fprintf(w, "  tracker      %s mode, %d events, %d drops, %d lost", orUnknown(d.Tracker.Mode), d.Tracker.Events, d.Tracker.Drops, d.Tracker.Lost)
		if d.Tracker.Misses > 0 {
			// Only a tracker with a verification sweep (Windows) has any.
			fmt.Fprintf(w, ", %d missed by the cuts, caught by the sweep", d.Tracker.Misses)
		}
		fmt.Fprintln(w)
		if d.Mode != "" {
			fmt.Fprintf(w, "  mode         %s: %s\n", d.Mode, d.ModeReason)
		}
		where := "spool"
		if d.Mode == api.AgentModeStream || d.Mode == api.AgentModeMetadata && !strings.HasPrefix(d.ModeReason, "spool") {
			where = "in memory"
		}
		fmt.Fprintf(w, "  %-12s %s in %d %s, next seq %d\n", where, bytesString(d.Spool.Bytes), d.Spool.Queued, plural(d.Spool.Queued, "segment", "segments"), d.Spool.NextSeq)
		fmt.Fprintf(w, "  pending      %s changed, not yet journaled\n", bytesString(d.PendingBytes))
		if d.Spool.BandwidthLimited {
			fmt.Fprintf(w, "  bandwidth    LAGGING because of the limit: uploads held to %s since %s, %s waiting (agentctl bandwidth)\n",
				config.FormatRate(st.Bandwidth.Limit), ago(st.Time, d.Spool.BandwidthLimitedSince), bytesString(d.Spool.Bytes))
		}
		if d.Lag.Samples > 0 || d.Lag.Current > 0 {
			fmt.Fprintf(w, "  RPO lag      now %s, p50 %s, p99 %s, max %s (%d samples)\n", secs(d.Lag.Current), secs(d.Lag.P50), secs(d.Lag.P99), secs(d.Lag.Max), d.Lag.Samples)
		} else {
			fmt.Fprintln(w, "  RPO lag      no samples yet")
		}
	}
	if len(st.Problems) > 0 {
		fmt.Fprintln(w, "\nproblems:")
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  [%s] %s\n    remedy: %s\n", p.Code, p.What, p.Remedy)
		}
	}
}

func serverLine(st api.AgentStatus) string {
	s := st.Server
	addr := orUnknown(s.Address)
	switch {
	case s.LastError != "" && !s.Connected:
		since := ""
		if !s.ErrorSince.IsZero() {
			since = " since " + ago(st.Time, s.ErrorSince)
		}
		return fmt.Sprintf("%s UNREACHABLE%s: %s", addr, since, s.LastError)
	case s.LastError != "":
		return fmt.Sprintf("%s connected, last segment refused: %s", addr, s.LastError)
	case s.Connected:
		if s.LastOK.IsZero() {
			return addr + " connected"
		}
		return fmt.Sprintf("%s connected, last acknowledgement %s", addr, ago(st.Time, s.LastOK))
	}
	return addr + " not contacted yet (nothing to send)"
}

func pointLine(p *api.AgentPoint, now time.Time) string {
	if p == nil {
		return "none yet"
	}
	s := fmt.Sprintf("%s %s, %s", p.ID, p.Kind, ago(now, p.Time))
	if p.FreezeSeconds > 0 {
		s += fmt.Sprintf(" (frozen %s)", secs(p.FreezeSeconds))
	}
	return s
}

// syncLine is the progress of an initial sync or resync: a bar on a
// terminal, a plain line otherwise.
func syncLine(d api.AgentDiskStatus, v view) string {
	sy := d.Sync
	eta := "ETA unknown"
	if sy.ETA >= 0 {
		eta = "ETA " + secs(sy.ETA)
	}
	rate := "rate unknown"
	if sy.Rate > 0 {
		rate = bytesString(int64(sy.Rate)) + "/s"
	}
	nums := fmt.Sprintf("%5.1f%%  %s of %s  %s  %s", 100*d.Progress, bytesString(sy.DoneBytes), bytesString(sy.TotalBytes), rate, eta)
	if d.State == api.AgentStateResync {
		nums += fmt.Sprintf("  (%s sent, %s equal)", bytesString(d.SentBytes), bytesString(d.EqualBytes))
	}
	line := "progress     " + strings.TrimLeft(nums, " ")
	if v.tty {
		width := v.width
		if width <= 0 {
			width = 80
		}
		barW := min(40, max(10, width-len(nums)-18))
		line = "progress     " + bar(d.Progress, barW) + " " + nums
	}
	if sy.Reason != "" {
		line = "reason       " + sy.Reason + "\n  " + line
	}
	return line
}

func bar(f float64, w int) string {
	f = min(1, max(0, f))
	n := int(f*float64(w) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", w-n) + "]"
}

// summaryLine is one line of the state that matters for --watch without
// a terminal: a new line is printed when it changes.
func summaryLine(st api.AgentStatus) string {
	var b strings.Builder
	if st.Healthy {
		b.WriteString("healthy")
	} else {
		b.WriteString("UNHEALTHY")
	}
	for _, d := range st.Disks {
		fmt.Fprintf(&b, "; %s %s", d.Name, d.State)
		if d.State != api.AgentStateProtected {
			fmt.Fprintf(&b, " %.0f%%", 100*d.Progress)
		}
		if d.Spool.BandwidthLimited {
			b.WriteString(" (held by the bandwidth limit)")
		}
	}
	if st.Server.Connected {
		b.WriteString("; server connected")
	} else if st.Server.LastError != "" {
		b.WriteString("; server unreachable")
	}
	if len(st.Problems) > 0 {
		var codes []string
		for _, p := range st.Problems {
			c := p.Code
			if p.Disk != "" {
				c += "(" + p.Disk + ")"
			}
			codes = append(codes, c)
		}
		b.WriteString("; problems: " + strings.Join(codes, ", "))
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ago is how long before now t was, to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + dur(-d)
	}
	return dur(d) + " ago"
}

func dur(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
	if d >= time.Hour {
		d = d.Round(time.Minute)
	}
	return d.String()
}

// secs prints seconds briefly: 3ms, 1.2s, 2m5s.
func secs(s float64) string {
	switch {
	case s <= 0:
		return "0s"
	case s < 1:
		return fmt.Sprintf("%dms", int(s*1000+0.5))
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	}
	return dur(time.Duration(s * float64(time.Second)))
}

func bytesString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", f), "0"), ".") + " " + units[i]
}
