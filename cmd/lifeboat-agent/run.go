package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/internal/config"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/internal/logging"
	"github.com/lifeboat-dr/lifeboat/internal/metricsweb"
)

type runCommand struct {
	out, errOut io.Writer
	getenv      func(string) string // os.Getenv if nil
	quiet       bool                // no usage on a missing flag (check-config)
}

// envPrefix starts the environment variable of every flag of run.
const envPrefix = "LIFEBOAT_AGENT_"

// runOptions are the flags of run, after the configuration file and the
// environment were applied.
type runOptions struct {
	server, passFile, state, name, pinDir, scriptsDir string
	tokenFile                                         string
	disks                                             []string
	pointEvery, appEvery, scriptTimeout               time.Duration
	spool                                             int64
	memoryBytes                                       int64
	groupListen                                       string
	groupTimeout, groupFrozenMax, registerTimeout     time.Duration
	metricsAddr, logFormat, logLevel                  string
	webConfig                                         string
	expedite                                          bool
	stallAlert, lagAlert                              time.Duration
	bandwidthLimit                                    int64
	bandwidthSchedule                                 []string
	// metricsExplicit: --metrics was given (flag, environment or file),
	// so failing to bind it is an error rather than a warning.
	metricsExplicit bool
}

// parse reads run's flags, then LIFEBOAT_AGENT_<FLAG> and the --config
// file for those not given (internal/config), and checks what is required.
func (c *runCommand) parse(args []string) (*runOptions, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	configFile := fs.String("config", "", "TOML configuration `FILE`: keys are these flags' names (default $LIFEBOAT_AGENT_CONFIG; see docs/agent.md)")
	server := fs.String("server", "", "configuration server HOST:PORT (registration)")
	passFile := fs.String("passphrase-file", "", "file holding the registration passphrase (lifeboat-server init wrote DATA/passphrase)")
	tokenFile := fs.String("token-file", "", "file holding a one-time registration token (POST /v1/tokens, 'lifeboat push-install'); used in place of --passphrase-file, removed once registered")
	var disks stringList
	fs.Var(&disks, "disk", "block device to protect; repeat for several")
	state := fs.String("state", "", "state directory (identity, spool, local API socket); not on a protected disk")
	host, _ := os.Hostname()
	name := fs.String("name", host, "machine name")
	pinDir := fs.String("pin-dir", "", "bpffs directory of the tracker's pins (default /sys/fs/bpf/lifeboat-NAME, a dotted NAME mapped to a safe form)")
	pointEvery := new(time.Duration)
	config.DurationVar(fs, pointEvery, "point-interval", time.Minute, "crash-consistent point interval (>= 1s; units ms, s, m, h)")
	spool := new(int64)
	config.BytesVar(fs, spool, "spool-bytes", 0, "bound of a local spool (bytes, or a size such as 512MiB, 1GiB), where segments wait for the process server as files so points are kept through outages (it doubles the host's writes; never on a protected disk); 0: no spool, segments are streamed from memory")
	memoryBytes := new(int64)
	config.BytesVar(fs, memoryBytes, "memory-bytes", 16<<20, "without a spool, bound of the segments held in memory for the process server (bytes, or a size such as 16MiB); beyond it only the changed regions are tracked (metadata mode) until it catches up")
	appEvery := new(time.Duration)
	config.DurationVar(fs, appEvery, "app-interval", time.Hour, "app-consistent point interval (negative: only on agentctl bookmark --app-consistent)")
	scriptsDir := fs.String("scripts", "/etc/lifeboat/scripts.d", "directory of app-consistency scripts, run with pre before the freeze and post after the thaw")
	scriptTimeout := new(time.Duration)
	config.DurationVar(fs, scriptTimeout, "script-timeout", time.Minute, "time limit of each app-consistency script")
	expedite := fs.Bool("freeze-expedite-rcu", true, "expedite the kernel's RCU grace periods (/sys/kernel/rcu_expedited) during the freeze of an app or group point: FIFREEZE waits for several, about 40 ms under load, under 1 ms expedited")
	groupListen := fs.String("group-listen", ":20004", "address the group-point listener binds (mutual TLS; every member of the machine's replication group must reach it; \"\" turns group points off)")
	stallAlert := new(time.Duration)
	config.DurationVar(fs, stallAlert, "stall-alert", agent.DefaultStallAlert, "status is unhealthy when segments wait this long with no acknowledgement (negative: never)")
	lagAlert := new(time.Duration)
	config.DurationVar(fs, lagAlert, "lag-alert", agent.DefaultLagAlert, "status is unhealthy when the RPO lag exceeds this (negative: never)")
	groupTimeout := new(time.Duration)
	config.DurationVar(fs, groupTimeout, "group-timeout", 10*time.Second, "time a group point's phase may take on a member before the point fails")
	registerTimeout := new(time.Duration)
	config.DurationVar(fs, registerTimeout, "register-timeout", 5*time.Minute, "how long the first registration is retried (with backoff) while the configuration server cannot be reached (0: once)")
	groupFrozenMax := new(time.Duration)
	config.DurationVar(fs, groupFrozenMax, "group-frozen-max", 0, "hard limit of a group freeze: past it this machine thaws on its own (default twice --group-timeout)")
	bandwidthLimit := new(int64)
	fs.Var((*config.Rate)(bandwidthLimit), "bandwidth-limit", "upload `RATE` of all disks together, e.g. 20MiB (per second; KiB, MiB, GiB; or kB, MB, GB); unlimited or 0: none. agentctl bandwidth set changes it at run time")
	var bandwidthSchedule scheduleFlag
	fs.Var(&bandwidthSchedule, "bandwidth-schedule", "a `WINDOW` of the week with its own upload rate, \"[DAYS ]HH:MM-HH:MM=RATE\" in local time, e.g. \"Mon-Fri 08:00-18:00=10MiB\"; repeat for several (they must not overlap); outside them --bandwidth-limit applies")
	metricsAddr := fs.String("metrics", agent.DefaultMetricsAddr, "listen `ADDR` of the Prometheus /metrics endpoint, plain HTTP (\"\": none)")
	webConfig := fs.String("web-config-file", "", "web configuration `FILE` of /metrics: TLS and basic authentication, in the Prometheus exporters' format (docs/metrics.md; \"\": plain HTTP)")
	logFormat := fs.String("log-format", logging.FormatAuto, "log `FORMAT`: json, console or auto (console on a terminal, else json)")
	logLevel := fs.String("log-level", "info", "lowest `LEVEL` logged: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(c.errOut, "Usage: lifeboat-agent run [--config FILE] --server HOST:PORT --passphrase-file F --disk DEV [--disk DEV...] --state DIR [--name MACHINE]")
		cmdline.PrintDefaults(fs)
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, cmdline.Usagef("run", "run: unexpected argument %q", fs.Arg(0))
	}
	getenv := c.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if *configFile == "" {
		*configFile = getenv(envPrefix + "CONFIG")
	}
	sources, err := config.Apply(fs, config.Options{File: *configFile, EnvPrefix: envPrefix, Getenv: getenv, Skip: []string{"config"}})
	if err != nil {
		return nil, fmt.Errorf("run: configuration: %w", err)
	}
	var missing []string
	for flagName, v := range map[string]string{"--server": *server, "--state": *state, "--name": *name} {
		if v == "" {
			missing = append(missing, flagName)
		}
	}
	if len(disks) == 0 {
		missing = append(missing, "--disk")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		if c.quiet {
			return nil, fmt.Errorf("missing %s (a flag, %s<FLAG> or a key of the configuration file)", strings.Join(missing, ", "), envPrefix)
		}
		fs.Usage()
		return nil, cmdline.Usagef("run", "run: missing %s (a flag, %s<FLAG> or a key of the configuration file)", strings.Join(missing, ", "), envPrefix)
	}
	return &runOptions{stallAlert: *stallAlert, lagAlert: *lagAlert, server: *server, passFile: *passFile, state: *state, name: *name, pinDir: *pinDir,
		scriptsDir: *scriptsDir, disks: disks, pointEvery: *pointEvery, appEvery: *appEvery,
		scriptTimeout: *scriptTimeout, spool: *spool, memoryBytes: *memoryBytes, tokenFile: *tokenFile, expedite: *expedite,
		groupListen: *groupListen, groupTimeout: *groupTimeout, groupFrozenMax: *groupFrozenMax, registerTimeout: *registerTimeout,
		metricsAddr: *metricsAddr, logFormat: *logFormat, logLevel: *logLevel,
		bandwidthLimit: *bandwidthLimit, bandwidthSchedule: bandwidthSchedule, webConfig: *webConfig,
		metricsExplicit: sources["metrics"] != config.FromDefault && sources["metrics"] != ""}, nil
}

func (c *runCommand) Run(ctx context.Context, args []string) error {
	o, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := precheck(o); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	server, passFile, disks, state, name, pinDir := &o.server, &o.passFile, o.disks, &o.state, &o.name, &o.pinDir
	pointEvery, spool, appEvery, scriptsDir, scriptTimeout := &o.pointEvery, &o.spool, &o.appEvery, &o.scriptsDir, &o.scriptTimeout
	groupListen, groupTimeout, groupFrozenMax := &o.groupListen, &o.groupTimeout, &o.groupFrozenMax
	metricsAddr, logFormat, logLevel := &o.metricsAddr, &o.logFormat, &o.logLevel
	if err := validate(o); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	bandwidth, err := bandwidthLimiter(o.bandwidthLimit, o.bandwidthSchedule)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return fmt.Errorf("run: state directory: %w", err)
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("run: --log-level: %w", err)
	}
	log, err := logging.New(c.errOut, logging.Options{Format: *logFormat, Level: level})
	if err != nil {
		return fmt.Errorf("run: --log-format: %w", err)
	}
	id, err := loadOrRegister(ctx, *state, *server, *passFile, o.tokenFile, *name, o.registerTimeout, log)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	proc, err := client.NewProcess(id.processAddr, id.cert, id.caPEM)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	metrics := agent.NewMetrics()
	cfg := agent.Config{
		Machine: *name, Disks: disks, StateDir: *state, Client: metrics.Wrap(proc), PinDir: *pinDir,
		PointInterval: *pointEvery, SpoolBytes: *spool, MemoryBytes: o.memoryBytes, Log: log,
		AppInterval: *appEvery, ScriptsDir: *scriptsDir, ScriptTimeout: *scriptTimeout, ExpediteFreeze: o.expedite,
		ServerAddr: id.processAddr, Certificate: id.cert.Leaf,
		StallAlert: o.stallAlert, LagAlert: o.lagAlert, Bandwidth: bandwidth,
		Redirect: func(addr string) error {
			// Scale-out: the configuration server moved the machine.
			// Remember the new process server for the next start.
			if err := fsutil.WriteFileAtomic(filepath.Join(*state, "identity", "process-server"), []byte(addr+"\n"), 0o600); err != nil {
				return fmt.Errorf("save process server: %w", err)
			}
			return proc.SetAddr(addr)
		},
	}
	// The configuration server is polled every 2 s for the machine's
	// group and process server (a move), with or without group points.
	conf, err := client.NewAgentConfig(*server, id.cert, id.caPEM)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	cfg.Group.Server = conf
	if *groupListen != "" {
		cfg.Group = agent.GroupConfig{Listen: *groupListen, Server: conf, Cert: id.cert, CA: id.caPEM,
			PhaseTimeout: *groupTimeout, FrozenMax: *groupFrozenMax}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	metrics.Attach(a)
	rn := &renewer{server: *server, idDir: filepath.Join(*state, "identity"), id: id, uses: []interface{ SetCertificate(tls.Certificate) }{proc, conf, groupPort{a}}, onRenew: a.SetCertificate,
		log: log.With("component", "identity"), interval: renewEvery}
	go rn.run(ctx)
	if *metricsAddr != "" {
		stop, err := serveMetrics(*metricsAddr, o.webConfig, o.metricsExplicit, metrics, log)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		defer stop()
	}
	log.Info("replicating", "machine", *name, "disks", []string(disks), "process_server", id.processAddr)
	if bw := bandwidth.Status(); bw.Configured > 0 || len(bw.Schedule) > 0 {
		log.Info("bandwidth limit", "limit", config.FormatRate(bw.Configured), "schedule", bw.Schedule, "now", config.FormatRate(bw.Limit))
	}
	go logProgress(ctx, a, log, progressEvery)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			// Which signal (or other cause) stopped the agent: main
			// cancels with a *stopSignal.
			log.Info("stopping", "cause", context.Cause(ctx).Error())
		case <-stopped:
		}
	}()
	err = a.Run(ctx)
	if ctx.Err() != nil {
		log.Info("stopped", "cause", context.Cause(ctx).Error(), "err", errString(err))
	}
	return err
}

// serveMetrics serves /metrics on addr (plain HTTP, or as the web
// configuration file says: TLS, basic authentication). When the address
// is the default one (not given) and cannot be bound, for instance
// because a second agent runs on this host, it only warns.
func serveMetrics(addr, webConfig string, explicit bool, m *agent.Metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if !explicit {
			log.Warn("metrics disabled: cannot listen on the default address", "addr", addr, "err", err,
				"hint", "another process holds the port (a second agent?): give each agent its own --metrics ADDR, or --metrics '' for none")
			return func() {}, nil
		}
		return nil, fmt.Errorf("metrics: listen on %s: %w (choose another --metrics ADDR, or --metrics '' for none)", addr, err)
	}
	srv, err := metricsweb.Serve(ln, m.Handler(), webConfig, log.With("component", "metrics"), nil)
	if err != nil {
		ln.Close()
		return nil, err
	}
	log.Info("metrics listening", "addr", ln.Addr().String(), "web_config", webConfig)
	return func() { srv.Close() }, nil
}

type identity struct {
	cert        tls.Certificate
	caPEM       []byte
	processAddr string
}

// loadOrRegister returns the machine's identity from the state directory,
// registering with the configuration server the first time.
// With tokenFile it registers with that one-time token (and removes the
// file once the token is used up); else with the passphrase of passFile.
func loadOrRegister(ctx context.Context, dir, server, passFile, tokenFile, name string, retryFor time.Duration, log *slog.Logger) (*identity, error) {
	idDir := filepath.Join(dir, "identity")
	certPEM, err1 := os.ReadFile(filepath.Join(idDir, "machine.crt"))
	keyPEM, err2 := os.ReadFile(filepath.Join(idDir, "machine.key"))
	caPEM, err3 := os.ReadFile(filepath.Join(idDir, "ca.crt"))
	proc, err4 := os.ReadFile(filepath.Join(idDir, "process-server"))
	if err := errors.Join(err1, err2, err3, err4); err == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("identity in %s: %w (remove it to register again)", idDir, err)
		}
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil && leaf.Subject.CommonName != name {
			return nil, fmt.Errorf("state directory %s holds the identity of %q, not %q: give each machine its own --state", dir, leaf.Subject.CommonName, name)
		}
		return &identity{cert: cert, caPEM: caPEM, processAddr: strings.TrimSpace(string(proc))}, nil
	}
	if passFile == "" && tokenFile == "" {
		return nil, errors.New("not registered yet: give --token-file (a one-time token) or --passphrase-file (the server's DATA/passphrase)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var processAddr string
	var secret string
	if tokenFile != "" {
		tok, rerr := os.ReadFile(tokenFile)
		if rerr != nil {
			return nil, fmt.Errorf("read registration token: %w (issue a new token, e.g. with 'lifeboat push-install', or give --passphrase-file)", rerr)
		}
		secret = string(tok)
	} else {
		pass, rerr := os.ReadFile(passFile)
		if rerr != nil {
			return nil, fmt.Errorf("read passphrase: %w", rerr)
		}
		secret = strings.TrimSpace(string(pass))
	}
	// The first registration is retried with backoff for retryFor, so an
	// agent started before its server (or while the server restarts)
	// waits instead of exiting into the service's start limit.
	err = retryRegistration(ctx, retryFor, log, func() error {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var rerr error
		if tokenFile != "" {
			certPEM, caPEM, processAddr, rerr = client.RegisterWithToken(rctx, server, name, secret, key)
		} else {
			certPEM, caPEM, processAddr, rerr = client.Register(rctx, server, name, secret, key)
		}
		return rerr
	})
	if err != nil {
		return nil, registrationError(server, err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.MkdirAll(idDir, 0o700); err != nil {
		return nil, err
	}
	for file, b := range map[string][]byte{"machine.key": keyPEM, "machine.crt": certPEM, "ca.crt": caPEM, "process-server": []byte(processAddr + "\n")} {
		if err := os.WriteFile(filepath.Join(idDir, file), b, 0o600); err != nil {
			return nil, fmt.Errorf("save identity: %w", err)
		}
	}
	if tokenFile != "" {
		// The token is used up: keep no secret that opens nothing.
		if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("registered, but cannot remove the used token file", "file", tokenFile, "err", err)
		}
	}
	log.Info("registered", "machine", name, "server", server, "process_server", processAddr, "with", map[bool]string{true: "token", false: "passphrase"}[tokenFile != ""])
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate from the server: %w", err)
	}
	return &identity{cert: cert, caPEM: caPEM, processAddr: processAddr}, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
