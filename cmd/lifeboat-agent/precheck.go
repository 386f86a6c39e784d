package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/api"
)

// precheck makes the checks that need nothing but the options, before the
// agent registers or attaches anything: a start that fails on them leaves
// no machine registered and no program in the kernel. The machine's name
// and each disk's name (the base name of its device) become paths on the
// server (files, URLs) and the bpffs directory of the pins.
func precheck(o *runOptions) error {
	if err := api.ValidName(o.name); err != nil {
		return &agent.ConfigError{Err: fmt.Errorf("--name: %w", err),
			Remedy: "give the machine a name of letters, digits, '.', '_' and '-' (at most 63) with --name; a dotted host name is fine"}
	}
	seen := map[string]string{}
	for _, d := range o.disks {
		abs, _ := filepath.Abs(d)
		base := filepath.Base(abs)
		if err := api.ValidName(base); err != nil {
			return &agent.ConfigError{Err: fmt.Errorf("--disk %s: its name is the device's base name: %w", d, err),
				Remedy: "give the disk by a path whose last element is a valid name, e.g. a symbolic link /dev/lifeboat/NAME to the device"}
		}
		if prev, dup := seen[base]; dup {
			return &agent.ConfigError{Err: fmt.Errorf("--disk %s and %s have the same name %q", prev, d, base),
				Remedy: "give each disk by a path with a different last element"}
		}
		seen[base] = d
	}
	if o.pinDir != "" && strings.Contains(filepath.Base(o.pinDir), ".") {
		return &agent.ConfigError{Err: fmt.Errorf("--pin-dir %s: bpffs refuses a '.' in a name", o.pinDir),
			Remedy: "choose a --pin-dir without '.' in its last element, or leave it out: the default maps the machine's name to a safe form"}
	}
	return nil
}
