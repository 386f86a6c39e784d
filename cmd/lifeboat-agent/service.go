package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/cmd/sysservice"
)

// DefaultConfig is the configuration file of the agent's service
// (%ProgramData%\Lifeboat\agent.toml on Windows, service_windows.go).
var DefaultConfig = "/etc/lifeboat/agent.toml"

func agentService(stdout, stderr io.Writer) sysservice.Spec {
	return sysservice.Spec{
		Name:        "lifeboat-agent",
		DisplayName: "Lifeboat mobility agent",
		Description: "Lifeboat mobility agent: tracks and replicates the protected disks",
		Config:      DefaultConfig,
		After:       []string{"network-online.target"},
		StopSeconds: 60,
		Check: func(file string) error {
			_, err := checkConfig(file, stderr)
			return err
		},
		Uninstalled: releaseTracker,
	}
}

// checkConfig says whether the agent can start with file: a server, disks,
// a state directory, and a passphrase or an identity from an earlier
// registration.
func checkConfig(file string, stderr io.Writer) (*runOptions, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("no configuration file: %w", err)
	}
	o, err := (&runCommand{out: io.Discard, errOut: stderr, quiet: true}).parse([]string{"--config", file})
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(o.state, "identity", "machine.crt")); err == nil {
		return o, nil
	}
	if o.tokenFile != "" {
		if _, err := os.Stat(o.tokenFile); err != nil {
			return nil, fmt.Errorf("token-file: %w", err)
		}
		return o, nil
	}
	if o.passFile == "" {
		return nil, errors.New("not registered yet and no passphrase-file: set passphrase-file to a copy of the server's DATA/passphrase (or token-file to a one-time token)")
	}
	if _, err := os.Stat(o.passFile); err != nil {
		return nil, fmt.Errorf("passphrase-file: %w", err)
	}
	return o, nil
}

// releaseTracker ends tracking in the kernel once the service is gone: the
// agent keeps its tracker pinned in bpffs across a stop (so an upgrade
// loses nothing), which an uninstall must not leave behind. The state
// directory stays; a later agent on it resyncs.
func releaseTracker(file string, out io.Writer) error {
	pinDir := ""
	name, _ := os.Hostname()
	if o, err := (&runCommand{out: io.Discard, errOut: io.Discard, quiet: true}).parse([]string{"--config", file}); err == nil {
		pinDir, name = o.pinDir, o.name
	} else if _, serr := os.Stat(file); serr == nil {
		fmt.Fprintf(out, "lifeboat-agent: %s: %v; releasing the default pins of %q\n", file, err, name)
	}
	if pinDir == "" {
		pinDir = agent.DefaultPinDir(name)
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("release the tracker: remove its pins: %w (remove %s by hand to stop tracking)", err, pinDir)
	}
	fmt.Fprintf(out, "lifeboat-agent: tracker released (pins in %s removed)\n", pinDir)
	return nil
}
