package configsrv

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the drills (docs/metrics.md): Drills is a
// prometheus.Collector the server registers.
var (
	mDrillPass      = prometheus.NewDesc("lifeboat_drill_last_pass", "1 when the machine's last drill passed, 0 when it failed.", []string{"machine"}, nil)
	mDrillLast      = prometheus.NewDesc("lifeboat_drill_last_timestamp_seconds", "Unix time the machine's last drill started.", []string{"machine"}, nil)
	mDrillLastPass  = prometheus.NewDesc("lifeboat_drill_last_pass_timestamp_seconds", "Unix time the machine's last passing drill started.", []string{"machine"}, nil)
	mDrillReady     = prometheus.NewDesc("lifeboat_drill_boot_to_ready_seconds", "Seconds from qemu's start to a ready console in the machine's last drill.", []string{"machine"}, nil)
	mDrillInterval  = prometheus.NewDesc("lifeboat_drill_interval_seconds", "The machine's drill interval (0: drills off).", []string{"machine"}, nil)
	mDrillsTotal    = prometheus.NewDesc("lifeboat_drills_total", "Drills run since the server started, by result (pass, fail).", []string{"machine", "result"}, nil)
	allDrillMetrics = []*prometheus.Desc{mDrillPass, mDrillLast, mDrillLastPass, mDrillReady, mDrillInterval, mDrillsTotal}
)

// Describe implements prometheus.Collector.
func (d *Drills) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range allDrillMetrics {
		ch <- m
	}
}

// Collect implements prometheus.Collector.
func (d *Drills) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for m, rec := range d.recs {
		ch <- prometheus.MustNewConstMetric(mDrillInterval, prometheus.GaugeValue, rec.Policy.IntervalSeconds, m)
		if l := rec.LastDrill; l != nil {
			pass := 0.0
			if l.Pass {
				pass = 1
			}
			ch <- prometheus.MustNewConstMetric(mDrillPass, prometheus.GaugeValue, pass, m)
			ch <- prometheus.MustNewConstMetric(mDrillLast, prometheus.GaugeValue, float64(l.Started.UnixNano())/1e9, m)
			ch <- prometheus.MustNewConstMetric(mDrillReady, prometheus.GaugeValue, l.BootToReadySeconds, m)
		}
		if rec.LastPass != nil {
			ch <- prometheus.MustNewConstMetric(mDrillLastPass, prometheus.GaugeValue, float64(rec.LastPass.UnixNano())/1e9, m)
		}
	}
	for k, n := range d.counts {
		ch <- prometheus.MustNewConstMetric(mDrillsTotal, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}
