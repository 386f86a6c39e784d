package configsrv

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// drillMetric is a drill metric under its name in the server's namespace
// (lifeboat_server_drill_…) and under its first name (lifeboat_drill_…),
// kept one release for the dashboards that use it (docs/metrics.md).
type drillMetric struct{ cur, old *prometheus.Desc }

func newDrillMetric(oldName, help string, labels ...string) drillMetric {
	name := "lifeboat_server_" + strings.TrimPrefix(oldName, "lifeboat_")
	return drillMetric{
		cur: prometheus.NewDesc(name, help, labels, nil),
		old: prometheus.NewDesc(oldName, "Deprecated, removed in the next release: the same as "+name+" (one namespace per binary).", labels, nil),
	}
}

// Metrics of the drills (docs/metrics.md): Drills is a
// prometheus.Collector the server registers.
var (
	mDrillPass      = newDrillMetric("lifeboat_drill_last_pass", "1 when the machine's last drill passed, 0 when it failed.", "machine")
	mDrillLast      = newDrillMetric("lifeboat_drill_last_timestamp_seconds", "Unix time the machine's last drill started.", "machine")
	mDrillLastPass  = newDrillMetric("lifeboat_drill_last_pass_timestamp_seconds", "Unix time the machine's last passing drill started.", "machine")
	mDrillReady     = newDrillMetric("lifeboat_drill_boot_to_ready_seconds", "Seconds from qemu's start to a ready console in the machine's last drill.", "machine")
	mDrillInterval  = newDrillMetric("lifeboat_drill_interval_seconds", "The machine's drill interval (0: drills off).", "machine")
	mDrillsTotal    = newDrillMetric("lifeboat_drills_total", "Drills run since the server started, by result (pass, fail).", "machine", "result")
	allDrillMetrics = []drillMetric{mDrillPass, mDrillLast, mDrillLastPass, mDrillReady, mDrillInterval, mDrillsTotal}
)

// Describe implements prometheus.Collector.
func (d *Drills) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range allDrillMetrics {
		ch <- m.cur
		ch <- m.old
	}
}

// Collect implements prometheus.Collector.
func (d *Drills) Collect(ch chan<- prometheus.Metric) {
	emit := func(m drillMetric, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.cur, t, v, labels...)
		ch <- prometheus.MustNewConstMetric(m.old, t, v, labels...)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for m, rec := range d.recs {
		emit(mDrillInterval, prometheus.GaugeValue, rec.Policy.IntervalSeconds, m)
		if l := rec.LastDrill; l != nil {
			pass := 0.0
			if l.Pass {
				pass = 1
			}
			emit(mDrillPass, prometheus.GaugeValue, pass, m)
			emit(mDrillLast, prometheus.GaugeValue, float64(l.Started.UnixNano())/1e9, m)
			emit(mDrillReady, prometheus.GaugeValue, l.BootToReadySeconds, m)
		}
		if rec.LastPass != nil {
			emit(mDrillLastPass, prometheus.GaugeValue, float64(rec.LastPass.UnixNano())/1e9, m)
		}
	}
	for k, n := range d.counts {
		emit(mDrillsTotal, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}
