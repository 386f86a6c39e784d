// Package pushinstall installs the Lifeboat agent on a host over SSH, as
// 'lifeboat push-install' runs it from the server host: it checks the
// host (root or passwordless sudo, package manager, free space), copies
// the agent package, installs it with dpkg or rpm, writes the agent's
// configuration with a one-time registration token, starts the agent and
// waits until it has registered. Every step is reported as it ends.
//
// It owns the order of those steps and the errors an operator meets
// (no root, no space, wrong package type, dpkg failures) with their
// remedies. It must never leave a registration token or the uploaded
// package behind on a failure it can clean up, never ask for a password
// (sudo -n only), and never copy the server's passphrase to a host.
package pushinstall
