package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb"
	"github.com/lifeboat-dr/lifeboat/server/alerts"
	"github.com/lifeboat-dr/lifeboat/server/configsrv"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/store"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
)

// DefaultMetricsAddr is the listen address of the server's /metrics that
// lifeboat-server run uses (plain HTTP, loopback only).
const DefaultMetricsAddr = "127.0.0.1:9465"

// metricsScrapeTimeout bounds what one scrape may spend reading target
// storage.
const metricsScrapeTimeout = 10 * time.Second

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Metrics of the server; every one is documented in docs/metrics.md.
var (
	mMachineState     = desc("lifeboat_server_machine_state", "1 for the state the machine is in (protected, failed-over, committed).", "machine", "state")
	mLastSeen         = desc("lifeboat_server_machine_last_seen_timestamp_seconds", "Unix time of the machine's last request to the process role since the server started.", "machine")
	mRPO              = desc("lifeboat_server_rpo_seconds", "Age of the machine's newest listed recovery point.", "machine")
	mLatestPoint      = desc("lifeboat_server_latest_point_timestamp_seconds", "Unix time of the machine's newest listed recovery point.", "machine")
	mPoints           = desc("lifeboat_server_points", "Listed recovery points of the machine, by kind (crash, app, group).", "machine", "kind")
	mDiskSize         = desc("lifeboat_server_disk_size_bytes", "Size of a protected disk as its agent declared it.", "machine", "disk")
	mSegReceived      = desc("lifeboat_server_segments_received_total", "Segments of the disk made durable in the cache (the disk's next sequence number).", "machine", "disk")
	mSegApplied       = desc("lifeboat_server_segments_applied_total", "Segments of the disk applied to target storage.", "machine", "disk")
	mSegPending       = desc("lifeboat_server_segments_pending", "Durable segments of the disk not yet applied to target storage.", "machine", "disk")
	mApplyFailing     = desc("lifeboat_server_apply_failing", "1 while the applier of the disk is retrying a failed apply.", "machine", "disk")
	mCacheBytes       = desc("lifeboat_server_cache_bytes", "Bytes of the disk's segments held in the cache, waiting to be applied.", "machine", "disk")
	mCacheFree        = desc("lifeboat_server_cache_free_bytes", "Free bytes of the file system of the data directory's cache.")
	mCacheCapacity    = desc("lifeboat_server_cache_capacity_bytes", "Size of the file system of the data directory's cache.")
	mAlertActive      = desc("lifeboat_server_alert_active", "1 while an alert of this kind is active for the machine (\"\" for server-wide alerts).", "alert", "machine")
	mAlertActiveOld   = desc("lifeboat_alert_active", "Deprecated, removed in the next release: the same as lifeboat_server_alert_active (one namespace per binary).", "alert", "machine")
	mAlertsRaised     = desc("lifeboat_server_alerts_raised_total", "Alerts raised since the server started, by kind.", "alert")
	mReceivedBytes    = desc("lifeboat_server_received_bytes_total", "Request body bytes received by the process role from the machine (segments and declarations) since the server started.", "machine")
	mProcessRequests  = desc("lifeboat_server_process_requests_total", "Requests of the machine to the process role since the server started, by endpoint and HTTP status code.", "machine", "endpoint", "code")
	mAlertsEvaluated  = desc("lifeboat_server_alerts_evaluated_timestamp_seconds", "Unix time of the last evaluation of the alert conditions.")
	allServerMetrics  = []*prometheus.Desc{mMachineState, mLastSeen, mRPO, mLatestPoint, mPoints, mDiskSize, mSegReceived, mSegApplied, mSegPending, mApplyFailing, mCacheBytes, mCacheFree, mCacheCapacity, mAlertActive, mAlertActiveOld, mAlertsRaised, mReceivedBytes, mProcessRequests, mAlertsEvaluated}
	machineStateNames = []string{api.StateProtected, api.StateFailedOver, api.StateCommitted}
)

// serverHistograms are the server's distributions (docs/metrics.md).
type serverHistograms struct {
	apply, materialize *prometheus.HistogramVec
}

func newServerHistograms() *serverHistograms {
	return &serverHistograms{
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeboat_server_apply_duration_seconds",
			Help:    "Time the process role took to apply each segment to target storage.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"machine", "disk"}),
		materialize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeboat_server_materialize_duration_seconds",
			Help:    "Time each materialization of a machine's disks at a point took (failover, test failover, drill), successful ones only.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 15)}, []string{"machine"}),
	}
}

func (h *serverHistograms) observeApply(machine, disk string, took time.Duration) {
	h.apply.WithLabelValues(machine, disk).Observe(took.Seconds())
}

// timedMaterializer times the materializations of the failovers (and so
// of the drills, which go through them).
type timedMaterializer struct {
	store.Store
	h *serverHistograms
}

func (t timedMaterializer) Materialize(ctx context.Context, machine, pointID, outDir string) ([]store.Image, error) {
	start := time.Now()
	imgs, err := t.Store.Materialize(ctx, machine, pointID, outDir)
	if err == nil {
		t.h.materialize.WithLabelValues(machine).Observe(time.Since(start).Seconds())
	}
	return imgs, err
}

// timedBlobMaterializer is timedMaterializer over a store that can also
// materialize to new page blobs (store/azblob): the failovers find that
// ability by its method, so the wrapper keeps it (and only then has it).
type timedBlobMaterializer struct {
	timedMaterializer
	blob configsrv.BlobMaterializer
}

func (t timedBlobMaterializer) MaterializeToBlob(ctx context.Context, machine, pointID, container string) ([]azblob.BlobImage, error) {
	start := time.Now()
	imgs, err := t.blob.MaterializeToBlob(ctx, machine, pointID, container)
	if err == nil {
		t.h.materialize.WithLabelValues(machine).Observe(time.Since(start).Seconds())
	}
	return imgs, err
}

// timed wraps st to time its materializations, keeping what else it can.
func timed(st store.Store, h *serverHistograms) store.Store {
	t := timedMaterializer{st, h}
	if b, ok := st.(configsrv.BlobMaterializer); ok {
		return timedBlobMaterializer{t, b}
	}
	return t
}

// traffic counts what the process role receives, per machine.
type traffic struct {
	mu       sync.Mutex
	bytes    map[string]uint64
	requests map[requestKey]uint64
}

type requestKey struct{ machine, endpoint, code string }

// serverCollector reads the server's state at each scrape.
type serverCollector struct{ s *Server }

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allServerMetrics {
		ch <- d
	}
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(s.ctx, metricsScrapeTimeout)
	defer cancel()
	now := time.Now()
	if s.cfg.Roles.Process {
		if free, total, err := alerts.Space(filepath.Join(s.dir, CacheDir), s.dir); err == nil {
			gauge(mCacheFree, float64(free))
			gauge(mCacheCapacity, float64(total))
		} else if !errors.Is(err, alerts.ErrNoStatfs) {
			ch <- prometheus.NewInvalidMetric(mCacheFree, err)
		}
	}
	names, err := s.status.Names(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(mMachineState, err)
		names = nil
	}
	for _, name := range names {
		rec, _ := s.machines.Get(name)
		for _, st := range machineStateNames {
			v := 0.0
			if rec.StateName() == st {
				v = 1
			}
			gauge(mMachineState, v, name, st)
		}
		if !rec.LastSeen.IsZero() {
			gauge(mLastSeen, unixSeconds(rec.LastSeen), name)
		}
		for _, d := range rec.Disks {
			gauge(mDiskSize, float64(d.Size), name, d.Name)
		}
		pts, err := s.store.Points(ctx, name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			ch <- prometheus.NewInvalidMetric(mPoints, err)
			continue
		}
		kinds := map[string]int{"crash": 0, "app": 0, "group": 0}
		var newest time.Time
		for _, p := range pts {
			kinds[p.Kind]++
			newest = alerts.MaxTime(newest, p.Time)
		}
		for k, n := range kinds {
			gauge(mPoints, float64(n), name, k)
		}
		if !newest.IsZero() {
			gauge(mLatestPoint, unixSeconds(newest), name)
			gauge(mRPO, now.Sub(newest).Seconds(), name)
		}
	}
	for _, d := range s.proc.Counters() {
		counter(mSegReceived, float64(d.Next), d.Machine, d.Disk)
		counter(mSegApplied, float64(d.Applied), d.Machine, d.Disk)
		gauge(mSegPending, float64(d.Next-min(d.Applied, d.Next)), d.Machine, d.Disk)
		gauge(mApplyFailing, b2f(d.Failing), d.Machine, d.Disk)
		gauge(mCacheBytes, float64(d.CacheBytes), d.Machine, d.Disk)
	}
	a := s.alerts.Stats()
	active := map[[2]string]bool{}
	for _, k := range a.Active {
		active[k] = true
	}
	for _, k := range []string{api.AlertRPO, api.AlertHeartbeat, api.AlertResync, api.AlertCacheLow} {
		counter(mAlertsRaised, float64(a.Raised[k]), k)
	}
	if !a.Evaluated.IsZero() {
		gauge(mAlertsEvaluated, unixSeconds(a.Evaluated))
	}
	for k := range active {
		gauge(mAlertActive, 1, k[0], k[1])
		gauge(mAlertActiveOld, 1, k[0], k[1])
	}
	t := &s.traffic
	t.mu.Lock()
	for m, n := range t.bytes {
		counter(mReceivedBytes, float64(n), m)
	}
	for k, n := range t.requests {
		counter(mProcessRequests, float64(n), k.machine, k.endpoint, k.code)
	}
	t.mu.Unlock()
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricsHandler returns the handler of /metrics: the server's collector,
// plus the Go runtime's and the process's.
func (s *Server) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(serverCollector{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector("lifeboat-server"))
	reg.MustRegister(s.drills, s.hist.apply, s.hist.materialize)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// listenMetrics binds the plain-HTTP listener of /metrics, if configured.
// A failure is an error unless Config.MetricsBestEffort is set.
func (s *Server) listenMetrics() error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		if s.cfg.MetricsBestEffort {
			s.log.Warn("metrics disabled: cannot listen", httpapi.LogAddr, s.cfg.MetricsAddr, httpapi.LogErr, err,
				"hint", "another process holds the port: pass --metrics ADDR to choose one, or --metrics '' to silence this")
			return nil
		}
		return listenError("metrics", s.cfg.MetricsAddr, "--metrics", err)
	}
	s.metricsAddr = ln.Addr()
	log := s.cfg.Logger.With(httpapi.LogComponent, "metrics")
	srv, err := metricsweb.Serve(ln, s.MetricsHandler(), s.cfg.MetricsWebConfig, log, s.serveErr)
	if err != nil {
		ln.Close()
		return err
	}
	s.metricsSrv = srv
	log.Info("listening", httpapi.LogAddr, ln.Addr().String(), "web_config", s.cfg.MetricsWebConfig)
	return nil
}

// MetricsAddr returns the bound address of /metrics, or "".
func (s *Server) MetricsAddr() string { return addrString(s.metricsAddr) }

// observe wraps the process role's handler: it counts the bytes and
// requests of each machine, notes the hashes requests (a resync) and tells
// the alerts of every contact.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		machine := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			machine = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		if api.ValidName(machine) != nil || machine == api.AdminName {
			next.ServeHTTP(w, r) // refused by the handler; not counted
			return
		}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		endpoint, disk := processEndpoint(r.Method, r.URL.Path)
		t := &s.traffic
		t.mu.Lock()
		if t.bytes == nil {
			t.bytes, t.requests = map[string]uint64{}, map[requestKey]uint64{}
		}
		t.bytes[machine] += body.n
		t.requests[requestKey{machine, endpoint, strconv.Itoa(rec.code)}]++
		t.mu.Unlock()
		if endpoint == "hashes" && rec.code == http.StatusOK {
			s.alerts.NoteHashes(machine, disk)
		}
		s.alerts.NoteContact(machine)
	})
}

// processEndpoint names the endpoint of a process-role request, for the
// endpoint label, and returns the disk of its path.
func processEndpoint(method, path string) (endpoint, disk string) {
	p := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(p) == 2 && p[1] == "machine":
		return "machine", ""
	case len(p) == 4 && p[1] == "disks" && p[3] == "state":
		return "disk_state", p[2]
	case len(p) == 5 && p[1] == "disks" && p[3] == "segments":
		return "segment", p[2]
	case len(p) == 4 && p[1] == "disks" && p[3] == "hashes":
		return "hashes", p[2]
	case len(p) == 3 && p[1] == "points":
		return "point", ""
	}
	return "other", ""
}

type countingBody struct {
	io.ReadCloser
	n uint64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += uint64(n)
	return n, err
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
