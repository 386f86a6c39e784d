package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
)

// DefaultMetricsAddr is the listen address of the agent's /metrics that
// lifeboat-agent run uses (plain HTTP, loopback only).
const DefaultMetricsAddr = "127.0.0.1:9464"

// agentCounts counts the events Status does not keep: points cut by kind
// and resyncs started by disk.
type agentCounts struct {
	mu      sync.Mutex
	points  map[string]uint64
	resyncs map[string]uint64
	// hist are the histograms of the Metrics attached (Attach); nil:
	// none, nothing is observed.
	hist atomic.Pointer[histograms]
}

// observe records into the attached histograms, if any.
func (c *agentCounts) observe(f func(h *histograms)) {
	if h := c.hist.Load(); h != nil {
		f(h)
	}
}

// histograms are the agent's distributions (docs/metrics.md): their
// buckets aggregate across disks and machines, which the quantile gauge
// lifeboat_agent_rpo_lag_recent_seconds cannot.
type histograms struct {
	lag, upload, freeze *prometheus.HistogramVec
}

func newHistograms() *histograms {
	return &histograms{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeboat_agent_rpo_lag_observed_seconds",
			Help:    "RPO lag of each round that carried changes: from its oldest write being queued to its data being durable on the process server.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14)}, []string{"disk"}),
		upload: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeboat_agent_upload_duration_seconds",
			Help:    "Time of each segment upload the process server acknowledged, from the request to the acknowledgement (bandwidth limit included).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"disk"}),
		freeze: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeboat_agent_freeze_duration_seconds",
			Help:    "How long the filesystems were frozen for each app or group point.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"kind"}),
	}
}

func (c *agentCounts) point(k hrlfmt.CutKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.points == nil {
		c.points = map[string]uint64{}
	}
	c.points[k.String()]++
}

func (c *agentCounts) resync(disk string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resyncs == nil {
		c.resyncs = map[string]uint64{}
	}
	c.resyncs[disk]++
}

// Metrics exposes an agent's state to Prometheus and counts what it sends
// to the process server. Make it with NewMetrics, pass Metrics.Wrap(client)
// as Config.Client, then Attach the agent.
type Metrics struct {
	mu    sync.Mutex
	sends map[string]*sendCounts // by disk
	agent *Agent
	hist  *histograms
}

type sendCounts struct {
	segments, bytes, errors, hashes uint64
}

// NewMetrics returns an empty Metrics.
func NewMetrics() *Metrics { return &Metrics{sends: map[string]*sendCounts{}, hist: newHistograms()} }

// Attach sets the agent whose Status the metrics read.
func (m *Metrics) Attach(a *Agent) {
	m.mu.Lock()
	m.agent = a
	m.mu.Unlock()
	a.counts.hist.Store(m.hist)
}

func (m *Metrics) count(disk string, f func(c *sendCounts)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.sends[disk]
	if c == nil {
		c = &sendCounts{}
		m.sends[disk] = c
	}
	f(c)
}

// Wrap returns s with its uploads and hashes requests counted.
func (m *Metrics) Wrap(s Server) Server { return &meteredServer{Server: s, m: m} }

// meteredServer counts the requests that matter to metrics; every other
// method of Server passes through the embedded interface.
type meteredServer struct {
	Server
	m *Metrics
}

func (s *meteredServer) PutSegmentFile(ctx context.Context, disk string, seq uint64, path string) (api.SegmentAck, error) {
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	start := time.Now()
	ack, err := s.Server.PutSegmentFile(ctx, disk, seq, path)
	s.countSegment(disk, size, ack, err, time.Since(start))
	return ack, err
}

func (s *meteredServer) PutSegment(ctx context.Context, disk string, seq uint64, body io.Reader, size int64) (api.SegmentAck, error) {
	start := time.Now()
	ack, err := s.Server.PutSegment(ctx, disk, seq, body, size)
	s.countSegment(disk, size, ack, err, time.Since(start))
	return ack, err
}

func (s *meteredServer) countSegment(disk string, size int64, ack api.SegmentAck, err error, took time.Duration) {
	if err == nil {
		s.m.hist.upload.WithLabelValues(disk).Observe(took.Seconds())
	}
	s.m.count(disk, func(c *sendCounts) {
		switch {
		case err != nil:
			c.errors++
		case !ack.Duplicate:
			c.segments++
			c.bytes += uint64(size)
		}
	})
}

func (s *meteredServer) Hashes(ctx context.Context, disk string, off, n, block int64) ([][32]byte, error) {
	s.m.count(disk, func(c *sendCounts) { c.hashes++ })
	return s.Server.Hashes(ctx, disk, off, n, block)
}

func adesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Metrics of the agent; every one is documented in docs/metrics.md.
var (
	mHealthy       = adesc("lifeboat_agent_healthy", "1 when agentctl status reports no problem.")
	mProblems      = adesc("lifeboat_agent_problems", "Number of problems agentctl status reports.")
	mDiskState     = adesc("lifeboat_agent_disk_state", "1 for the replication state the disk is in (initial-sync, protected, resync).", "disk", "state")
	mDiskSize      = adesc("lifeboat_agent_disk_size_bytes", "Size of the protected disk.", "disk")
	mProgress      = adesc("lifeboat_agent_sync_progress_ratio", "Progress of the initial sync or resync, 0 to 1 (1 when protected).", "disk")
	mPending       = adesc("lifeboat_agent_pending_bytes", "Bytes known changed and not yet journaled.", "disk")
	mTrackedBytes  = adesc("lifeboat_agent_tracked_bytes_total", "Bytes of writes the tracker reported (churn).", "disk")
	mTrackedWrites = adesc("lifeboat_agent_tracked_writes_total", "Write requests the tracker reported.", "disk")
	mDrops         = adesc("lifeboat_agent_tracker_drops_total", "Requests the tracker's ring buffer had no room for (marked in the dirty bitmap instead).", "disk")
	mBitmapRegions = adesc("lifeboat_agent_tracker_bitmap_regions_total", "Dirty regions collected from the tracker's bitmap.", "disk")
	mLost          = adesc("lifeboat_agent_tracker_lost_total", "Changes neither the ring buffer nor the bitmap could record (any means a resync).", "disk")
	mMisses        = adesc("lifeboat_agent_tracker_misses_total", "Blocks a verification sweep found changed that no cut had reported (Windows tracker; each was then sent).", "disk")
	mMode          = adesc("lifeboat_agent_tracker_mode", "1 for the tracker's mode of the disk (metadata, bitmap).", "disk", "mode")
	mGeneration    = adesc("lifeboat_agent_tracker_generation", "The tracker's current generation (bumped by every cut).")
	mInFlight      = adesc("lifeboat_agent_tracker_in_flight", "Writes queued and not yet completed, as the tracker counts them.")
	mJournaled     = adesc("lifeboat_agent_journaled_bytes_total", "Data bytes journaled since the agent started; restarts from 0 when a resync starts.", "disk")
	mEqual         = adesc("lifeboat_agent_resync_equal_bytes_total", "Bytes a resync found equal to the replica and did not send.", "disk")
	mSpoolBytes    = adesc("lifeboat_agent_spool_bytes", "Bytes of sealed segments in the spool not yet acknowledged by the process server.", "disk")
	mSpoolSegments = adesc("lifeboat_agent_spool_segments", "Sealed segments in the spool not yet acknowledged.", "disk")
	mConnected     = adesc("lifeboat_agent_server_connected", "1 while the last exchange with the process server succeeded.", "disk")
	mLastUpload    = adesc("lifeboat_agent_last_upload_timestamp_seconds", "Unix time of the last acknowledged upload.", "disk")
	mLag           = adesc("lifeboat_agent_rpo_lag_seconds", "How long the oldest change not yet durable on the process server has waited (0 when none waits).", "disk")
	mLagRecent     = adesc("lifeboat_agent_rpo_lag_recent_seconds", "Deprecated, removed in the next release (quantiles cannot be aggregated): use the histogram lifeboat_agent_rpo_lag_observed_seconds. RPO lag over the latest rounds: quantile 0.5, 0.99 and 1 (max).", "disk", "quantile")
	mLagSamples    = adesc("lifeboat_agent_rpo_lag_samples_total", "Rounds whose RPO lag was measured.", "disk")
	mLastPoint     = adesc("lifeboat_agent_last_point_timestamp_seconds", "Unix time of the last point cut, by kind.", "kind")
	mPointsTotal   = adesc("lifeboat_agent_points_total", "Recovery points cut since the agent started, by kind (crash, app, group).", "kind")
	mResyncs       = adesc("lifeboat_agent_resyncs_total", "Resyncs started since the agent started.", "disk")
	mSentSegments  = adesc("lifeboat_agent_sent_segments_total", "Segments sent and acknowledged by the process server (duplicates not counted).", "disk")
	mSentBytes     = adesc("lifeboat_agent_sent_bytes_total", "Bytes of the segments sent and acknowledged by the process server (compressed, as on the wire).", "disk")
	mUploadErrors  = adesc("lifeboat_agent_upload_errors_total", "Segment uploads that failed (retried).", "disk")
	mHashRequests  = adesc("lifeboat_agent_hash_requests_total", "Requests for the replica's block hashes (resync compares).", "disk")
	allAgentDescs  = []*prometheus.Desc{mHealthy, mProblems, mDiskState, mDiskSize, mProgress, mPending, mTrackedBytes, mTrackedWrites, mDrops, mBitmapRegions, mLost, mMisses, mMode, mGeneration, mInFlight, mJournaled, mEqual, mSpoolBytes, mSpoolSegments, mConnected, mLastUpload, mLag, mLagRecent, mLagSamples, mLastPoint, mPointsTotal, mResyncs, mSentSegments, mSentBytes, mUploadErrors, mHashRequests}
	diskStates     = []DiskState{StateInitialSync, StateProtected, StateResync}
	trackerModes   = []string{"metadata", "bitmap"}
	pointKinds     = []string{"crash", "app", "group"}
)

func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allAgentDescs {
		ch <- d
	}
}

// Collect reads the agent's Status and the counters.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	m.mu.Lock()
	a := m.agent
	sends := make(map[string]sendCounts, len(m.sends))
	for k, v := range m.sends {
		sends[k] = *v
	}
	m.mu.Unlock()
	for disk, c := range sends {
		counter(mSentSegments, float64(c.segments), disk)
		counter(mSentBytes, float64(c.bytes), disk)
		counter(mUploadErrors, float64(c.errors), disk)
		counter(mHashRequests, float64(c.hashes), disk)
	}
	if a == nil {
		return
	}
	st := a.Status()
	gauge(mHealthy, b2f(st.Healthy))
	gauge(mProblems, float64(len(st.Problems)))
	gauge(mGeneration, float64(st.Tracker.Generation))
	gauge(mInFlight, float64(st.Tracker.InFlight))
	for _, d := range st.Disks {
		for _, s := range diskStates {
			gauge(mDiskState, b2f(d.State == s), d.Name, string(s))
		}
		gauge(mDiskSize, float64(d.Size), d.Name)
		gauge(mProgress, d.Progress, d.Name)
		gauge(mPending, float64(d.PendingBytes), d.Name)
		counter(mTrackedBytes, float64(d.Tracker.Bytes), d.Name)
		counter(mTrackedWrites, float64(d.Tracker.Events), d.Name)
		counter(mDrops, float64(d.Tracker.Drops), d.Name)
		counter(mBitmapRegions, float64(d.Tracker.BitmapRegions), d.Name)
		counter(mLost, float64(d.Tracker.Lost), d.Name)
		counter(mMisses, float64(d.Tracker.Misses), d.Name)
		if d.Tracker.Mode != "" {
			for _, mode := range trackerModes {
				gauge(mMode, b2f(d.Tracker.Mode == mode), d.Name, mode)
			}
		}
		counter(mJournaled, float64(d.SentBytes), d.Name)
		counter(mEqual, float64(d.EqualBytes), d.Name)
		gauge(mSpoolBytes, float64(d.Spool.Bytes), d.Name)
		gauge(mSpoolSegments, float64(d.Spool.Queued), d.Name)
		gauge(mConnected, b2f(d.Spool.Connected), d.Name)
		if !d.Spool.LastOK.IsZero() {
			gauge(mLastUpload, float64(d.Spool.LastOK.UnixNano())/1e9, d.Name)
		}
		gauge(mLag, d.Lag.Current, d.Name)
		if d.Lag.Samples > 0 {
			gauge(mLagRecent, d.Lag.P50, d.Name, "0.5")
			gauge(mLagRecent, d.Lag.P99, d.Name, "0.99")
			gauge(mLagRecent, d.Lag.Max, d.Name, "1")
		}
		counter(mLagSamples, float64(d.Lag.Samples), d.Name)
	}
	for _, p := range []*Point{st.LastPoint, st.LastApp} {
		if p != nil {
			gauge(mLastPoint, float64(p.Time.UnixNano())/1e9, p.Kind)
		}
	}
	a.counts.mu.Lock()
	points := make(map[string]uint64, len(a.counts.points))
	for k, v := range a.counts.points {
		points[k] = v
	}
	resyncs := make(map[string]uint64, len(a.counts.resyncs))
	for k, v := range a.counts.resyncs {
		resyncs[k] = v
	}
	a.counts.mu.Unlock()
	for _, k := range pointKinds {
		counter(mPointsTotal, float64(points[k]), k)
	}
	for _, d := range st.Disks {
		counter(mResyncs, float64(resyncs[d.Name]), d.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler returns the handler of /metrics: these metrics, plus the Go
// runtime's and the process's.
func (m *Metrics) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, m.hist.lag, m.hist.upload, m.hist.freeze, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector("lifeboat-agent"))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
