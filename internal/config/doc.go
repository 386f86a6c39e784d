// Package config fills the flags of a command from, in this order of
// precedence, the command line, the environment and a TOML configuration
// file, over the flags' own defaults.
//
// The mapping is generic, so a flag added later gets a configuration key
// and an environment variable with no change here: the key is the flag's
// name (`point-interval = "1m"`), the variable is the prefix followed by
// the name in upper case with dashes turned into underscores
// (LIFEBOAT_AGENT_POINT_INTERVAL). Values go through the flag's own Set,
// so the file and the environment accept exactly what the command line
// accepts. A repeatable flag takes a TOML array, or a comma-separated
// environment value.
//
// It owns reading and checking the file; it must never define flags,
// interpret their values, or accept a key that is not a flag: an unknown
// key is an error that names the key and the file.
package config
