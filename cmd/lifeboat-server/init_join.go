package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/process"
)

// join runs 'lifeboat-server init --join URL': the data directory of a
// process server that joins a configuration server.
func (c *InitCommand) join(ctx context.Context, dir, url, id, passFile string, sans []string) error {
	if id == "" {
		return fmt.Errorf("init: --join needs --name ID (this process server's id in 'lifeboat servers')")
	}
	if passFile == "" {
		return fmt.Errorf("init: --join needs --passphrase-file F (a copy of the configuration server's DATA/passphrase)")
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		return fmt.Errorf("init: read passphrase: %w", err)
	}
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := process.Join(jctx, process.JoinOptions{DataDir: dir, ConfigServer: url, ID: id,
		Passphrase: strings.TrimSpace(string(pass)), SANs: sans}); err != nil {
		return fmt.Errorf("init: join %s: %w", url, err) // its hint stays on the chain
	}
	fmt.Fprintf(c.main.Stdout, "joined %s as process server %s\n", url, id)
	fmt.Fprintf(c.main.Stdout, "  data directory:  %s (CA certificate, this server's certificate and key, %s)\n", dir, process.JoinFile)
	fmt.Fprintf(c.main.Stdout, "next: lifeboat-server run --data %s --roles process --advertise HOST:PORT [--store DIR --shared-store]\n", filepath.Clean(dir))
	return nil
}
