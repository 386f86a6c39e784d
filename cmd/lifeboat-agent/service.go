package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/lifeboat-dr/lifeboat/agent"
	"github.com/lifeboat-dr/lifeboat/internal/cmd/sysservice"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/internal/config"
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
	if err := validate(o); err != nil {
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

// releaseTrackerCommand is 'lifeboat-agent release-tracker': what the
// packages' prerm runs on removal, once the service is stopped.
func releaseTrackerCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release-tracker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.SetUsage(fs, "lifeboat-agent release-tracker [--config FILE]")
	file := fs.String("config", DefaultConfig, "the agent's configuration file (its name and pin-dir say which pins)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.Usagef("release-tracker", "release-tracker: unexpected argument %q", fs.Arg(0))
	}
	return releaseTracker(*file, stdout)
}

// releaseTracker ends tracking in the kernel once the service is gone: the
// agent keeps its tracker pinned in bpffs across a stop (so an upgrade
// loses nothing), which an uninstall must not leave behind. The state
// directory stays; a later agent on it resyncs.
func releaseTracker(file string, out io.Writer) error {
	pinDir, name := pinsOf(file, os.Getenv)
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

// pinsOf reads the pin-dir and name the agent of file runs with (the
// environment over the file, as run reads them), and only those: a
// configuration that is incomplete or wrong in other keys still says
// which pins are its own. name defaults to the host name.
func pinsOf(file string, getenv func(string) string) (pinDir, name string) {
	var f struct {
		PinDir string `toml:"pin-dir"`
		Name   string `toml:"name"`
	}
	if b, err := os.ReadFile(file); err == nil {
		_, _ = toml.Decode(string(b), &f)
	}
	pinDir, name = f.PinDir, f.Name
	if v := getenv(config.EnvName(envPrefix, "pin-dir")); v != "" {
		pinDir = v
	}
	if v := getenv(config.EnvName(envPrefix, "name")); v != "" {
		name = v
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	return pinDir, name
}
