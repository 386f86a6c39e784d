package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/internal/cmd/sysservice"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// DefaultConfig is the configuration file of the server's service.
const DefaultConfig = "/etc/lifeboat/server.toml"

func (m *Main) service() sysservice.Spec {
	cfg := DefaultConfig
	if os.PathSeparator == '\\' {
		cfg = `C:\ProgramData\Lifeboat\server.toml`
	}
	return sysservice.Spec{
		Name:        "lifeboat-server",
		DisplayName: "Lifeboat server",
		Description: "Lifeboat server: configuration, process and master-target roles",
		Config:      cfg,
		After:       []string{"network-online.target"},
		StopSeconds: 90,
		Check:       m.checkConfig,
	}
}

// checkConfig says whether the server can start with file: it reads and a
// data directory made by 'lifeboat-server init'.
func (m *Main) checkConfig(file string) error {
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("no configuration file: %w", err)
	}
	quiet := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: m.Getenv}
	return (&RunCommand{main: quiet, checkOnly: func(data string) error {
		if data == "" {
			return errors.New("no data directory: set data (and run 'lifeboat-server init --data DIR' once)")
		}
		if _, err := os.Stat(filepath.Join(data, pki.CACertFile)); err != nil {
			return fmt.Errorf("data directory %s is not initialized: run 'lifeboat-server init --data %s [--san NAME...]'", data, data)
		}
		return nil
	}}).Run(context.Background(), []string{"--config", file})
}
