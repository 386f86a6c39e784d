package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/BurntSushi/toml"

	"github.com/lifeboat-dr/lifeboat/api"
)

// DefaultAgentConfig is the agent service's configuration file, which the
// packages install; agentctl reads its state directory from it.
var DefaultAgentConfig = "/etc/lifeboat/agent.toml"

// getenv reads the environment (tests replace it).
var getenv = os.Getenv

// stateFlag defines --state and --config on fs. The function it returns
// gives, once fs is parsed, the state directory of the agent to talk to,
// found as the agent itself finds it: --state; else LIFEBOAT_AGENT_STATE;
// else the state key of the agent's configuration file (--config, else
// LIFEBOAT_AGENT_CONFIG, else /etc/lifeboat/agent.toml if it exists);
// else DefaultState. So after a package install `agentctl status` needs
// no flag.
func stateFlag(fs *flag.FlagSet, usage string) func() (string, error) {
	state := fs.String("state", "", usage+" (default: the agent's, from $LIFEBOAT_AGENT_STATE or its configuration file, else "+DefaultState+")")
	conf := fs.String("config", "", "the agent's configuration `FILE` to read the state directory from (default $LIFEBOAT_AGENT_CONFIG, else "+DefaultAgentConfig+")")
	return func() (string, error) {
		if *state != "" {
			return *state, nil
		}
		if v := getenv("LIFEBOAT_AGENT_STATE"); v != "" {
			return v, nil
		}
		file, explicit := *conf, *conf != ""
		if !explicit {
			file = getenv("LIFEBOAT_AGENT_CONFIG")
			explicit = file != ""
		}
		if !explicit {
			file = DefaultAgentConfig
		}
		b, err := os.ReadFile(file)
		if err != nil {
			if !explicit && errors.Is(err, os.ErrNotExist) {
				return DefaultState, nil
			}
			return "", api.WithHint(fmt.Errorf("read the agent's configuration: %w", err), "give --state DIR, or --config with the agent's file")
		}
		var c struct {
			State string `toml:"state"`
		}
		if _, err := toml.Decode(string(b), &c); err != nil {
			return "", api.WithHint(fmt.Errorf("%s: %w", file, err), "fix the file ('lifeboat-agent check-config --config "+file+"' says what is wrong), or give --state DIR")
		}
		if c.State != "" {
			return c.State, nil
		}
		return DefaultState, nil
	}
}
