package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Validate checks the settings New would refuse, with no side effect:
// nothing is created and no tracker is opened. lifeboat-agent run calls
// it before it registers the machine, so that a bad disk or state
// directory is refused before a certificate is issued and its key written.
func Validate(cfg Config) error {
	if cfg.Machine == "" || len(cfg.Disks) == 0 || cfg.StateDir == "" {
		return errors.New("agent: machine, disks and state directory are required")
	}
	if cfg.PointInterval != 0 && cfg.PointInterval < 1e9 {
		return &ConfigError{Err: fmt.Errorf("point interval %s: must be at least 1s", cfg.PointInterval),
			Remedy: "give --point-interval 1s or more"}
	}
	if cfg.SpoolBytes < 0 {
		return &ConfigError{Err: fmt.Errorf("spool bound %d: negative", cfg.SpoolBytes), Remedy: "give --spool-bytes a size such as 1GiB"}
	}
	sys := cfg.platform
	if sys == nil {
		sys = defaultPlatform()
	}
	seen := map[string]bool{}
	for _, d := range cfg.Disks {
		if seen[d] {
			return &ConfigError{Err: fmt.Errorf("disk %s given twice", d), Remedy: "give each --disk once"}
		}
		seen[d] = true
		if err := sys.checkDisk(d); err != nil {
			return err
		}
	}
	// The state directory may not exist yet: its nearest existing parent
	// tells the file system it will be on.
	dir := filepath.Clean(cfg.StateDir)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if err := sys.checkStateDir(dir, cfg.Disks); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) && dir != cfg.StateDir {
			ce.Err = fmt.Errorf("state directory %s would be on a protected disk (%s is): %w", cfg.StateDir, dir, ce.Err)
		}
		return err
	}
	return nil
}
