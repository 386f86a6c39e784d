package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery"
	"github.com/lifeboat-dr/lifeboat/server/alerts"
	"github.com/lifeboat-dr/lifeboat/server/configsrv"
	"github.com/lifeboat-dr/lifeboat/server/console"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/mastertarget"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/process"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Files and directories of the data directory that the server owns (pki
// owns the certificates, keys and passphrase).
const (
	// CacheDir holds the durable segments not yet applied:
	// cache/<machine>/<disk>/%016x.hrl, and each disk's cut log.
	CacheDir = "cache"
	// MachinesDir holds one JSON record per registered machine.
	MachinesDir = "machines"
	// StoreDir is the default target storage (store.Local).
	StoreDir = "store"
)

// Defaults of Config.
const (
	DefaultAPIAddr    = ":443"
	DefaultListenAddr = ":9443"
	// DefaultPruneInterval is how often the pruner applies every
	// machine's retention policy.
	DefaultPruneInterval = 5 * time.Minute
	// DefaultCheckTimeout bounds the check of one filesystem.
	DefaultCheckTimeout = 30 * time.Minute
	shutdownTimeout     = 30 * time.Second
)

// Roles says which roles a Server runs.
type Roles struct {
	Config, Process, MasterTarget bool
}

// AllRoles runs every role.
var AllRoles = Roles{Config: true, Process: true, MasterTarget: true}

// DefaultRoles returns the roles run when none are given: every role
// that can run on this system (the master target needs Linux).
func DefaultRoles() Roles {
	r := AllRoles
	r.MasterTarget = mastertarget.Supported()
	return r
}

// ParseRoles parses a comma-separated list of "config", "process" and
// "mastertarget".
func ParseRoles(s string) (Roles, error) {
	var r Roles
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "config":
			r.Config = true
		case "process":
			r.Process = true
		case "mastertarget":
			r.MasterTarget = true
		case "":
		default:
			return Roles{}, fmt.Errorf("unknown role %q (want config, process, mastertarget)", f)
		}
	}
	if r == (Roles{}) {
		return Roles{}, errors.New("no role")
	}
	return r, nil
}

// List returns the names of the roles, in a fixed order.
func (r Roles) List() []string {
	var l []string
	if r.Config {
		l = append(l, "config")
	}
	if r.Process {
		l = append(l, "process")
	}
	if r.MasterTarget {
		l = append(l, "mastertarget")
	}
	return l
}

// Config configures a Server.
type Config struct {
	// DataDir is the directory `lifeboat-server init` made.
	DataDir string
	// APIAddr is the listen address of the configuration role; "" means
	// DefaultAPIAddr.
	APIAddr string
	// ListenAddr is the listen address of the process role; "" means
	// DefaultListenAddr.
	ListenAddr string
	// Roles to run; the zero value means DefaultRoles() (AllRoles on
	// Linux).
	Roles Roles
	// Advertise is the process server's host:port given to agents at
	// registration; "" means the host the agent reached the configuration
	// role on, with the process role's bound port.
	Advertise string
	// Store is target storage; nil means store.Local in DataDir/store,
	// which the Server then closes.
	Store store.Store
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxSegmentBytes limits one segment; 0 means api.MaxSegmentBytes.
	MaxSegmentBytes int64
	// HashesWait bounds how long a hashes request waits for the durable
	// segments to be applied; 0 means process.DefaultHashesWait.
	HashesWait time.Duration
	// RetryMax caps the backoff of a failing Apply; 0 means
	// process.DefaultRetryMax.
	RetryMax time.Duration
	// PruneInterval is how often the pruner applies the retention
	// policy of every protected machine (process role); 0 means
	// DefaultPruneInterval, a negative value disables the pruner.
	PruneInterval time.Duration
	// CheckTimeout bounds the read-only check of one filesystem of a
	// failover; 0 means DefaultCheckTimeout.
	CheckTimeout time.Duration
	// MetricsAddr is the plain-HTTP listen address of /metrics; ""
	// disables it. MetricsBestEffort: failing to bind it only logs a
	// warning (lifeboat-server run's default address).
	MetricsAddr       string
	MetricsBestEffort bool
	// MetricsWebConfig is the web configuration file of /metrics (TLS,
	// basic authentication; internal/metricsweb); "": plain HTTP.
	MetricsWebConfig string
	// Alert thresholds (docs/metrics.md, server/alerts); 0 means the
	// alerts.Default, a negative value disables the alert. AlertRPO: age of the newest
	// point; AlertHeartbeat: time without contact from an agent;
	// AlertCacheFree: free bytes of the data directory.
	AlertRPO       time.Duration
	AlertHeartbeat time.Duration
	AlertCacheFree int64
	// AlertInterval is how often alerts are evaluated (0: default).
	AlertInterval time.Duration
	// AlertNotify, if set, is told of every alert raised and cleared
	// (alerts.Notifier: webhooks).
	AlertNotify func(raised, cleared []api.Alert)
	// ResyncWindow: a disk whose replica hashes were asked for within
	// it is shown as resyncing (0: alerts.DefaultResyncWindow).
	ResyncWindow time.Duration
	// Name is the id of this server's process role in 'lifeboat
	// servers' ("" means "local"; a joined server's id comes from its
	// join.json).
	Name string
	// StoreDir is the directory of target storage when Store is nil;
	// "" means DataDir/store. SharedStore opens it shared, for several
	// process servers on one (network) file system (store.go).
	StoreDir    string
	SharedStore bool
	// DrainTimeout bounds the drain of a move (0: configsrv.DefaultDrainTimeout).
	DrainTimeout time.Duration
	// HeartbeatTimeout: a joined process server silent for longer is
	// shown unhealthy and gets no new machine (0: api.HealthyMissed
	// heartbeats).
	HeartbeatTimeout time.Duration
	// ConfigServer overrides the configuration server URL of a joined
	// server's join.json ("" keeps it).
	ConfigServer string
	// JoinedRenewDue says when a joined server renews its certificate
	// (nil: process.RenewDue, a third of its lifetime left).
	JoinedRenewDue func(leaf *x509.Certificate, now time.Time) bool
}

// reflinker is target storage that can say whether its file system
// shares extents (store.Local).
type reflinker interface{ Reflink() bool }

// storeReflink returns whether the target storage shares extents, nil
// when it cannot tell, and the warning to give, if any.
func storeReflink(st store.Store) (*bool, string) {
	r, ok := st.(reflinker)
	if !ok {
		return nil, ""
	}
	v := r.Reflink()
	if v {
		return &v, ""
	}
	return &v, statefile.NoReflinkNote
}

// Server runs the roles of lifeboat-server on one data directory.
type Server struct {
	cfg      Config
	dir      string
	log      *slog.Logger
	ca       *pki.CA
	pass     string
	revoked  *pki.Revocations // the revocation list (docs/security.md)
	cert     tls.Certificate
	live     *pki.LiveCert // cert, as renewed (a joined server's): the process port presents it
	store    store.Store
	ownStore bool

	ctx    context.Context // of the appliers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	machines *machines.Registry

	tokens *configsrv.Tokens // one-time registration tokens
	plans  *configsrv.Plans  // recovery plans
	groups *configsrv.Groups // replication groups
	// policies: the retention policies' handlers; pruner: the process
	// role's application of them (the loop runs with the process role).
	policies     *configsrv.Policies
	failovers    *configsrv.Failovers // failover and commit
	drills       *configsrv.Drills    // boot tests, drills, kept VMs
	registration *configsrv.Registration
	servers      *configsrv.Servers    // scale-out coordination
	status       *configsrv.Status     // the machines' status view
	identities   *configsrv.Identities // reregister, revoke
	pruner       *process.Pruner

	proc     *process.Role              // nil unless the process role runs
	mt       *mastertarget.MasterTarget // nil unless the master-target role runs
	failback *mastertarget.API

	apiSrv, procSrv   *http.Server
	apiAddr, procAddr net.Addr
	metricsSrv        *http.Server
	hist              *serverHistograms // metrics.go
	metricsAddr       net.Addr
	alerts            *alerts.Monitor
	member            *process.Membership // nil unless joined
	unlockData        func()              // releases DataDir/server.lock (shared store only)
	console           *console.Console
	traffic           traffic
	serveErr          chan error
	closeOnce         sync.Once
	closeErr          error
}

// Open loads the data directory, recovers the cache, starts the appliers
// and the listeners of the configured roles, and writes server.json. Close
// stops it all.
func Open(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, &httpapi.Error{Msg: "no data directory", Remedy: "pass --data DIR (made by 'lifeboat-server init')"}
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	if cfg.Roles == (Roles{}) {
		cfg.Roles = DefaultRoles()
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "local"
	}
	s := &Server{
		cfg:      cfg,
		dir:      dir,
		log:      cfg.Logger.With(httpapi.LogComponent, "server"),
		serveErr: make(chan error, 3),
	}
	ji, joined, err := process.ReadJoin(dir)
	if err != nil {
		return nil, err
	}
	if s.machines, err = machines.Open(filepath.Join(dir, MachinesDir)); err != nil {
		return nil, err
	}
	if joined {
		s.ca, err = pki.LoadCACert(dir)
	} else {
		s.ca, err = pki.LoadCA(dir)
	}
	if err != nil {
		return nil, err
	}
	if s.cert, err = pki.LoadServerCert(dir); err != nil {
		return nil, err
	}
	s.live = pki.NewLiveCert(s.cert)
	if s.revoked, err = pki.OpenRevocations(dir); err != nil {
		return nil, err
	}
	if joined {
		if err := s.openJoined(ji); err != nil {
			return nil, err
		}
	}
	if cfg.Roles.Config {
		if s.pass, err = pki.ReadPassphrase(dir); err != nil {
			return nil, err
		}
	}
	// After openJoined: a joined server's id comes from its join.json.
	s.servers = configsrv.NewServers(configsrv.ServersOptions{DataDir: dir, ID: s.cfg.Name, HasLocal: s.hasLocalProcess(),
		Roles: cfg.Roles.List(), CA: s.ca, CAPEM: s.ca.CertPEM, Passphrase: s.pass, Machines: cfgMachines{s}, Local: localProc{s},
		StoreReflink:     func() (*bool, string) { return storeReflink(s.store) },
		HeartbeatTimeout: cfg.HeartbeatTimeout, DrainTimeout: cfg.DrainTimeout, Revoked: s.revoked, Log: cfg.Logger})
	if !joined {
		if err := s.servers.Load(); err != nil {
			return nil, err
		}
	}
	s.store = cfg.Store
	if s.store == nil {
		if err := s.openStore(); err != nil {
			return nil, err
		}
	}
	if _, note := storeReflink(s.store); note != "" && cfg.Roles.Process {
		s.log.Warn("target storage without reflink", "store", filepath.Join(dir, StoreDir), "warning", note)
	}
	s.tokens = configsrv.NewTokens(dir, cfg.Logger)
	s.identities = configsrv.NewIdentities(cfgMachines{s}, s.revoked, cfg.Logger)
	s.plans = configsrv.NewPlans(dir, cfgMachines{s}, cfg.Logger)
	s.groups = configsrv.NewGroups(dir, cfgMachines{s}, s.ca, cfg.Logger)
	s.policies = configsrv.NewPolicies(cfgMachines{s}, cfg.Logger)
	s.registration = configsrv.NewRegistration(s.ca, s.ca.CertPEM, s.pass, s.tokens, cfgMachines{s}, cfg.Logger)
	s.hist = newServerHistograms()
	s.failovers = configsrv.NewFailovers(cfgMachines{s}, timed(s.store, s.hist),
		&recovery.Checker{Timeout: cfg.CheckTimeout, Log: cfg.Logger.With(httpapi.LogComponent, "check")}, cfg.Logger)
	s.failovers.Tests = configsrv.NewTestFailovers(dir, cfg.Logger)
	s.failovers.Tests.Real = func(m string) []api.Image {
		if rec, ok := s.machines.Get(m); ok && rec.Failover != nil {
			return rec.Failover.Images
		}
		return nil
	}
	s.pruner = process.NewPruner(s.store, s.machines, cfgMachines{s}, cfg.Logger)
	if s.drills, err = configsrv.NewDrills(configsrv.DrillOptions{DataDir: dir, Failovers: s.failovers, Changed: func() { s.alerts.Kick() }, Log: cfg.Logger}); err != nil {
		return nil, err
	}
	s.alerts = alerts.New(alerts.Options{Drills: s.drills, RPO: cfg.AlertRPO, Heartbeat: cfg.AlertHeartbeat, CacheFree: cfg.AlertCacheFree,
		Interval: cfg.AlertInterval, ResyncWindow: cfg.ResyncWindow, Process: cfg.Roles.Process,
		DataDir: dir, CacheDir: filepath.Join(dir, CacheDir), Machines: alertMachines{s}, Store: s.store, Log: cfg.Logger,
		Notify: cfg.AlertNotify, Disks: alertDisks{s}})
	var servers *configsrv.Servers
	if cfg.Roles.Config {
		servers = s.servers
	}
	s.status = configsrv.NewStatus(configsrv.StatusOptions{CacheDir: filepath.Join(dir, CacheDir), Machines: statusMachines{s},
		Store: s.store, Alerts: s.alerts, Servers: servers})
	s.registration.Limit.OnBurst = s.alerts.RegistrationBurst
	s.registration.Revoked = s.revoked
	s.console = console.New(console.Options{DataDir: dir, Sampler: cfgMachines{s}, Log: cfg.Logger, API: console.API{
		Machines: s.status.List, Points: s.status.ListPoints, Alerts: s.alerts.List, Failover: s.failovers.Failover, Commit: s.failovers.Commit,
		Servers: s.servers.List, Plans: s.plans.List, Groups: s.groups.List, GroupPoint: s.groups.RequestPoint,
		Bookmark: s.groups.RequestBookmark, BookmarkStatus: s.groups.BookmarkStatus, BootTest: s.drills.BootTest, Drills: s.drills.List, DrillRun: s.drills.RunNow,
		TestFailovers: s.failovers.Tests.List, CleanupTestFailover: s.failovers.Tests.Cleanup}})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			for _, srv := range []*http.Server{s.apiSrv, s.procSrv, s.metricsSrv} {
				if srv != nil {
					srv.Close()
				}
			}
			s.stop()
		}
	}()
	if cfg.Roles.Process {
		if s.proc, err = process.New(process.Options{CacheDir: filepath.Join(dir, CacheDir), Store: s.store, Machines: procMachines{s},
			Log: cfg.Logger, MaxSegmentBytes: cfg.MaxSegmentBytes, HashesWait: cfg.HashesWait, RetryMax: cfg.RetryMax, Events: s.alerts,
			Applied: s.hist.observeApply}); err != nil {
			return nil, err
		}
	}
	if cfg.Roles.Process && cfg.PruneInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pruner.Run(s.ctx, cfg.PruneInterval)
		}()
	}
	if cfg.Roles.MasterTarget {
		if s.mt, err = mastertarget.New(mastertarget.Options{Log: cfg.Logger.With(httpapi.LogComponent, "mastertarget"), Machines: mtMachines{s}}); err != nil {
			return nil, err
		}
		if !cfg.Roles.Config {
			cfg.Logger.With(httpapi.LogComponent, "mastertarget").Warn("master-target role without the configuration role: failback is reached through the configuration role's API, so nothing will use it")
		}
	}
	s.failback = &mastertarget.API{MT: s.mt, Machines: mtMachines{s}}
	if err := s.listen(); err != nil {
		return nil, err
	}
	if err := s.listenMetrics(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.alerts.Run(s.ctx)
	}()
	if cfg.Roles.Config {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.drills.Run(s.ctx)
		}()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.console.Run(s.ctx) }()
	}
	if s.joined() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.member.Run(s.ctx)
		}()
	}
	if err := s.writeState(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// listen binds and serves the listeners of the roles.
func (s *Server) listen() error {
	errLog := slog.NewLogLogger(s.cfg.Logger.With(httpapi.LogComponent, "http").Handler(), slog.LevelWarn)
	if s.cfg.Roles.Process {
		cfg := &tls.Config{
			MinVersion: tls.VersionTLS13,
			// A joined server's renewed certificate is presented from
			// the next handshake on.
			GetCertificate: s.live.GetCertificate,
			ClientAuth:     tls.RequireAndVerifyClientCert,
			ClientCAs:      s.ca.Pool(),
			// A revoked certificate fails the handshake (docs/security.md).
			VerifyConnection: s.revoked.VerifyConnection,
		}
		ln, err := net.Listen("tcp", s.cfg.ListenAddr)
		if err != nil {
			return listenError("process", s.cfg.ListenAddr, "--listen", err)
		}
		s.procAddr = ln.Addr()
		s.procSrv = &http.Server{
			Handler:           s.observe(s.processHandler()),
			TLSConfig:         cfg,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       5 * time.Minute,
			ErrorLog:          errLog,
		}
		s.serve("process", s.procSrv, ln)
	}
	if s.cfg.Roles.Config {
		// Registration comes without a certificate; the admin API
		// checks the one it gets itself, to answer 401/403 with a
		// hint rather than fail the handshake.
		cfg := pki.APITLSConfig(s.cert, s.revoked)
		ln, err := net.Listen("tcp", s.cfg.APIAddr)
		if err != nil {
			return listenError("config", s.cfg.APIAddr, "--api", err)
		}
		s.apiAddr = ln.Addr()
		s.apiSrv = &http.Server{
			Handler:           s.configHandler(),
			TLSConfig:         cfg,
			ReadHeaderTimeout: 30 * time.Second,
			ReadTimeout:       5 * time.Minute,
			IdleTimeout:       5 * time.Minute,
			ErrorLog:          errLog,
		}
		s.serve("config", s.apiSrv, ln)
	}
	return nil
}

func listenError(role, addr, flag string, err error) error {
	return &httpapi.Error{
		Msg:    fmt.Sprintf("%s role: listen on %s", role, addr),
		Remedy: fmt.Sprintf("the port is in use or needs privileges: choose another with %s", flag),
		Err:    err,
	}
}

func (s *Server) serve(role string, srv *http.Server, ln net.Listener) {
	s.cfg.Logger.With(httpapi.LogComponent, role).Info("listening", httpapi.LogAddr, ln.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- fmt.Errorf("%s role: %w", role, err)
		}
	}()
}

// APIAddr returns the bound address of the configuration role, or "".
func (s *Server) APIAddr() string { return addrString(s.apiAddr) }

// ProcessAddr returns the bound address of the process role, or "".
func (s *Server) ProcessAddr() string { return addrString(s.procAddr) }

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// localURL returns an https URL that reaches addr from this host.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

func (s *Server) writeState() error {
	st := statefile.State{
		PID:     os.Getpid(),
		Roles:   s.cfg.Roles.List(),
		API:     s.APIAddr(),
		Process: s.ProcessAddr(),
		Metrics: s.MetricsAddr(),
		Started: time.Now().UTC(),
	}
	st.StoreReflink, st.StoreNote = storeReflink(s.store)
	if st.API != "" {
		st.APIURL = localURL(st.API)
	}
	return statefile.Write(s.dir, st)
}

// Run serves until ctx is done or a listener fails, then shuts down
// gracefully.
func (s *Server) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err = <-s.serveErr:
		s.log.Error("listener failed, shutting down", httpapi.LogErr, err)
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close shuts the server down gracefully: it stops accepting, waits up to
// 30 s for requests in flight, stops the appliers (a segment being applied
// is finished or left for the next start), closes target storage if it
// opened it, and removes server.json.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		for _, srv := range []*http.Server{s.apiSrv, s.procSrv, s.metricsSrv} {
			if srv == nil {
				continue
			}
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, err)
				srv.Close()
			}
		}
		if err := os.Remove(filepath.Join(s.dir, statefile.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := s.stop(); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// stop stops the appliers and closes the store if the server opened it.
func (s *Server) stop() error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.mt != nil {
		s.mt.Close()
	}
	if s.proc != nil {
		s.proc.Close()
	}
	s.wg.Wait()
	var err error
	if s.drills != nil {
		err = s.drills.Close()
	}
	if s.ownStore {
		if c, ok := s.store.(io.Closer); ok {
			err = c.Close()
		}
	}
	if s.unlockData != nil {
		s.unlockData()
		s.unlockData = nil
	}
	return err
}

// Alerts evaluates the alert conditions now and returns the alerts
// (server/alerts).
func (s *Server) Alerts(ctx context.Context) api.Alerts { return s.alerts.Alerts(ctx) }
