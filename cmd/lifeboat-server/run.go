package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/lifeboat-dr/lifeboat/internal/config"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/api"
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
	roles := fs.String("roles", "config,process,mastertarget", "comma-separated `ROLES` to run")
	advertise := fs.String("advertise", "", "`HOST:PORT` of the process role given to agents at registration (default: the host they reached --api on)")
	maxSeg := fs.Int64("max-segment-bytes", api.MaxSegmentBytes, "largest segment accepted, in `BYTES`")
	pruneInterval := fs.Duration("prune-interval", server.DefaultPruneInterval, "apply every protected machine's retention policy every `DURATION` (0: never)")
	checkTimeout := fs.Duration("check-timeout", server.DefaultCheckTimeout, "`DURATION` after which the check of one filesystem (failover --check) is stopped")
	debug := fs.Bool("debug", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat-server run [--config FILE] --data DIR [--api ADDR] [--listen ADDR] [--roles config,process,mastertarget]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *configFile == "" {
		*configFile = c.main.Getenv(envPrefix + "CONFIG")
	}
	if _, err := config.Apply(fs, config.Options{File: *configFile, EnvPrefix: envPrefix, Getenv: c.main.Getenv, Skip: []string{"config"}}); err != nil {
		return fmt.Errorf("run: configuration: %w", err)
	}
	if c.checkOnly != nil {
		return c.checkOnly(*data)
	}
	if *data == "" {
		return errors.New("run: --data DIR is required (a flag, LIFEBOAT_SERVER_DATA, or data in the configuration file)")
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
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := server.NewLogger(c.main.Stderr, level)
	srv, err := server.Open(server.Config{
		DataDir:         *data,
		APIAddr:         *apiAddr,
		ListenAddr:      *listen,
		Roles:           r,
		Advertise:       *advertise,
		Logger:          log,
		MaxSegmentBytes: *maxSeg,
		PruneInterval:   *pruneInterval,
		CheckTimeout:    *checkTimeout,
	})
	if err != nil {
		return err
	}
	log.Info("lifeboat-server running", "roles", r.List(), "api", srv.APIAddr(), "process", srv.ProcessAddr())
	if c.main.Ready != nil {
		c.main.Ready(srv)
	}
	return srv.Run(ctx)
}
