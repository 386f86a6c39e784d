package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/internal/config"
	"github.com/lifeboat-dr/lifeboat/internal/logging"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/alerts"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
)

// RunCommand is 'lifeboat-server run'.
type RunCommand struct {
	main *Main
	// checkOnly, if set, gets the data directory once the flags and the
	// configuration are read, instead of running (check-config).
	checkOnly func(data string) error
}

// envPrefix starts the environment variable of every flag of run.
const envPrefix = "LIFEBOAT_SERVER_"

// Run serves until ctx is done (SIGINT, SIGTERM), then shuts down
// gracefully.
func (c *RunCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	configFile := fs.String("config", "", "TOML configuration `FILE`: keys are these flags' names (default $LIFEBOAT_SERVER_CONFIG; see docs/server.md)")
	data := fs.String("data", c.main.Getenv("LIFEBOAT_DATA"), "data `DIR` made by 'lifeboat-server init' (default $LIFEBOAT_DATA)")
	apiAddr := fs.String("api", server.DefaultAPIAddr, "listen `ADDR` of the configuration role (HTTPS)")
	listen := fs.String("listen", server.DefaultListenAddr, "listen `ADDR` of the process role (mutual TLS 1.3)")
	roles := fs.String("roles", strings.Join(server.DefaultRoles().List(), ","), "comma-separated `ROLES` to run")
	advertise := fs.String("advertise", "", "`HOST:PORT` of the process role given to agents at registration (default: the host they reached --api on)")
	maxSeg := fs.Int64("max-segment-bytes", api.MaxSegmentBytes, "largest segment accepted, in `BYTES`")
	pruneInterval := fs.Duration("prune-interval", server.DefaultPruneInterval, "apply every protected machine's retention policy every `DURATION` (0: never)")
	checkTimeout := fs.Duration("check-timeout", server.DefaultCheckTimeout, "`DURATION` after which the check of one filesystem (failover --check) is stopped")
	debug := fs.Bool("debug", false, "log at debug level (same as --log-level debug)")
	logFormat := fs.String("log-format", logging.FormatAuto, "log `FORMAT`: json, console or auto (console on a terminal, else json)")
	logLevel := fs.String("log-level", "info", "lowest `LEVEL` logged: debug, info, warn or error")
	metricsAddr := fs.String("metrics", server.DefaultMetricsAddr, "listen `ADDR` of the Prometheus /metrics endpoint, plain HTTP (\"\": none)")
	webConfig := fs.String("web-config-file", "", "web configuration `FILE` of /metrics: TLS and basic authentication, in the Prometheus exporters' format (docs/metrics.md; \"\": plain HTTP)")
	rpoAlert := fs.Duration("rpo-alert", alerts.DefaultRPO, "raise rpo-breached when a machine's newest point is older than `DURATION` (0: never)")
	heartbeatAlert := fs.Duration("heartbeat-alert", alerts.DefaultHeartbeat, "raise heartbeat-lost when an agent has not been heard from for `DURATION` (0: never)")
	cacheAlert := fs.String("cache-free-alert", "1GiB", "raise cache-space-low when the data directory has less than `SIZE` free (0: never)")
	alertInterval := fs.Duration("alert-interval", alerts.DefaultInterval, "evaluate the alerts every `DURATION`")
	var webhooks stringList
	fs.Var(&webhooks, "alert-webhook", "POST every alert raised and cleared to `URL` (repeat for several; retried with backoff for 10 minutes)")
	webhookFormat := fs.String("alert-webhook-format", alerts.FormatAlertmanager, "payload of --alert-webhook: alertmanager (Prometheus Alertmanager's webhook format) or json")
	host, _ := os.Hostname()
	name := fs.String("name", host, "`ID` of this server's process role in 'lifeboat servers' (a joined server's id comes from its join)")
	storeDir := fs.String("store", "", "target storage: a `DIR` (default DATA/store), or azblob://ACCOUNT/CONTAINER (Azure Blob Storage)")
	storeEndpoint := fs.String("store-endpoint", "", "with --store azblob://…: the account's blob endpoint `URL` (an emulator, a sovereign cloud)")
	storeCreds := fs.String("store-credentials", "", "with --store azblob://…: `FILE` holding a connection string or the account key (default: $AZURE_STORAGE_CONNECTION_STRING, or $AZURE_STORAGE_KEY)")
	sharedStore := fs.Bool("shared-store", false, "open --store shared: every process server of a scale-out deployment, and the configuration server, on one (network) file system")
	configServer := fs.String("config-server", "", "`URL` of the configuration server, for a server that joined one (default: the URL of its 'init --join')")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat-server run [--config FILE] --data DIR [--api ADDR] [--listen ADDR] [--roles config,process,mastertarget]")
		cmdline.PrintDefaults(fs)
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *configFile == "" {
		*configFile = c.main.Getenv(envPrefix + "CONFIG")
	}
	sources, err := config.Apply(fs, config.Options{File: *configFile, EnvPrefix: envPrefix, Getenv: c.main.Getenv, Skip: []string{"config"}})
	if err != nil {
		return fmt.Errorf("run: configuration: %w", err)
	}
	if c.checkOnly != nil {
		return c.checkOnly(*data)
	}
	if *data == "" {
		return cmdline.Usagef("run", "run: --data DIR is required (a flag, LIFEBOAT_SERVER_DATA, or data in the configuration file)")
	}
	if *pruneInterval < 0 {
		return errors.New("run: --prune-interval must not be negative (0 disables the pruner)")
	}
	if *pruneInterval == 0 {
		*pruneInterval = -1 // server.Config: negative disables
	}
	r, err := server.ParseRoles(*roles)
	if err != nil {
		return fmt.Errorf("run: --roles: %w", err)
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("run: --log-level: %w", err)
	}
	if *debug {
		level = slog.LevelDebug
	}
	log, err := logging.New(c.main.Stderr, logging.Options{Format: *logFormat, Level: level})
	if err != nil {
		return fmt.Errorf("run: --log-format: %w", err)
	}
	cacheFree, err := parseSize(*cacheAlert)
	if err != nil {
		return fmt.Errorf("run: --cache-free-alert: %w", err)
	}
	for flagName, d := range map[string]*time.Duration{"--rpo-alert": rpoAlert, "--heartbeat-alert": heartbeatAlert} {
		switch {
		case *d < 0:
			return fmt.Errorf("run: %s must not be negative (0 disables the alert)", flagName)
		case *d == 0:
			*d = -1 // server.Config: negative disables
		}
	}
	if cacheFree == 0 {
		cacheFree = -1
	}
	if *alertInterval <= 0 {
		return errors.New("run: --alert-interval must be positive")
	}
	if err := metricsweb.Check(*webConfig); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	notifier, err := newNotifier(webhooks, *webhookFormat, *name, log)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	var blobStore *azblob.Store
	if azblob.IsURL(*storeDir) {
		if blobStore, err = openBlobStore(ctx, *storeDir, *storeEndpoint, *storeCreds, *name, c.main.Getenv, false); err != nil {
			return fmt.Errorf("run: --store: %w", err)
		}
		defer blobStore.Close()
		*storeDir, *sharedStore = "", false // a blob store needs no shared file system
	} else if *storeEndpoint != "" || *storeCreds != "" {
		return errors.New("run: --store-endpoint and --store-credentials go with --store azblob://ACCOUNT/CONTAINER")
	}
	cfg := server.Config{
		DataDir:         *data,
		APIAddr:         *apiAddr,
		ListenAddr:      *listen,
		Roles:           r,
		Advertise:       *advertise,
		Logger:          log,
		MaxSegmentBytes: *maxSeg,
		PruneInterval:   *pruneInterval,
		CheckTimeout:    *checkTimeout,

		MetricsAddr:      *metricsAddr,
		MetricsWebConfig: *webConfig,
		// Only the default address may be busy (another server on the
		// host): one given by flag, environment or file must bind.
		MetricsBestEffort: sources["metrics"] == config.FromDefault || sources["metrics"] == "",
		AlertRPO:          *rpoAlert,
		AlertHeartbeat:    *heartbeatAlert,
		AlertCacheFree:    cacheFree,
		AlertInterval:     *alertInterval,
		AlertNotify:       notifier.Notify,
		Name:              *name,
		StoreDir:          *storeDir,
		SharedStore:       *sharedStore,
		ConfigServer:      *configServer,
	}
	if blobStore != nil {
		cfg.Store = blobStore
	}
	srv, err := server.Open(cfg)
	if err != nil {
		return err
	}
	defer notifier.Close()
	log.Info("lifeboat-server running", "roles", r.List(), "api", srv.APIAddr(), "process", srv.ProcessAddr(), "metrics", srv.MetricsAddr())
	reportEncryption(log, *data, *storeDir)
	if c.main.Ready != nil {
		c.main.Ready(srv)
	}
	return srv.Run(ctx)
}

// parseSize parses a size with the shared parser (internal/config, the
// one every command uses). A bare K, M, G or T has meant a power of 1024
// here since --cache-free-alert was added, where the shared parser reads
// it as a power of 1000: it keeps its meaning (KiB ... TiB).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if n := len(t); n > 1 && strings.ContainsRune("KMGT", rune(t[n-1])) && (t[n-2] == ' ' || t[n-2] >= '0' && t[n-2] <= '9') {
		t += "iB"
	}
	n, err := config.ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n, nil
}
