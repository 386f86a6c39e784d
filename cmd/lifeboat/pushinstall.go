package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/internal/sshx"
	"github.com/lifeboat-dr/lifeboat/server/pushinstall"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
)

// PushInstallCommand is 'lifeboat push-install'.
type PushInstallCommand struct {
	main *Main
	conn Conn
}

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// PushInstallResult is the --json output (docs/server.md).
type PushInstallResult struct {
	Host    string             `json:"host"`
	Machine string             `json:"machine"`
	Package string             `json:"package"`
	OK      bool               `json:"ok"`
	Steps   []pushinstall.Step `json:"steps"`
}

// Run installs the agent on a host over SSH.
func (c *PushInstallCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push-install", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	// The connection flags, except --key: here it is the SSH key; the
	// admin key is --admin-key.
	get := c.main.Getenv
	def := func(v, env string) string {
		if v != "" {
			return v
		}
		return get(env)
	}
	fs.StringVar(&c.conn.Data, "data", def(c.conn.Data, "LIFEBOAT_DATA"), "server data `DIR` (on the server host; default $LIFEBOAT_DATA)")
	fs.StringVar(&c.conn.Server, "server", def(c.conn.Server, "LIFEBOAT_SERVER"), "admin API `URL` (default $LIFEBOAT_SERVER)")
	fs.StringVar(&c.conn.CA, "ca", def(c.conn.CA, "LIFEBOAT_CA"), "CA certificate `FILE` (default $LIFEBOAT_CA)")
	fs.StringVar(&c.conn.Cert, "cert", def(c.conn.Cert, "LIFEBOAT_CERT"), "admin certificate `FILE` (default $LIFEBOAT_CERT)")
	adminKey := fs.String("admin-key", get("LIFEBOAT_KEY"), "admin key `FILE` (default $LIFEBOAT_KEY; with --data: DIR/admin.key)")
	host := fs.String("host", "", "`HOST` to install the agent on (name or address of its SSH server)")
	port := fs.Int("port", 22, "SSH `PORT` of the host")
	user := fs.String("user", "root", "SSH `USER`: root, or a user with passwordless sudo")
	key := fs.String("key", "", "SSH private key `FILE` authorized for --user on the host (a passphrase is asked on the terminal); default: the keys of ssh-agent ($SSH_AUTH_SOCK)")
	home, _ := os.UserHomeDir()
	knownHosts := fs.String("known-hosts", filepath.Join(home, ".ssh", "known_hosts"), "known_hosts `FILE` that must hold the host's key")
	acceptKey := fs.String("accept-host-key", "", "accept an unknown host key of this `SHA256:...` fingerprint and add it to --known-hosts")
	pkg := fs.String("package", "", "agent package `FILE` (.deb or .rpm); default: the newest dist/lifeboat-agent_*_"+runtime.GOARCH+".deb")
	var disks stringsFlag
	fs.Var(&disks, "disk", "block `DEV`ice the agent protects on the host; repeat for several")
	name := fs.String("name", "", "machine `NAME` of the agent (default: --host, if it is a valid name)")
	agentServer := fs.String("agent-server", "", "configuration server `HOST:PORT` as the host reaches it (default: the server's API address)")
	var sets stringsFlag
	fs.Var(&sets, "set", "more agent configuration, `KEY=VALUE` (a flag of 'lifeboat-agent run', e.g. point-interval=30s); repeat")
	uploadDir := fs.String("upload-dir", "/var/tmp", "`DIR` on the host the package is copied to")
	ttl := fs.Duration("token-ttl", api.DefaultTokenTTL, "lifetime of the one-time registration token")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the agent to register")
	asJSON := fs.Bool("json", false, "print the steps as JSON (stable, see docs/server.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat push-install --host H [--user U] --key FILE [--known-hosts F] [--accept-host-key SHA256:...] [--port 22] [--package FILE] --disk DEV [--disk DEV...] [--name MACHINE] [--json]")
		cmdline.PrintDefaults(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cmdline.Usagef("push-install", "push-install: unexpected argument %q", pos[0])
	}
	c.conn.Key = *adminKey
	var missing []string
	if *host == "" {
		missing = append(missing, "--host")
	}
	if *key == "" && get("SSH_AUTH_SOCK") == "" {
		missing = append(missing, "--key (or an ssh-agent: SSH_AUTH_SOCK)")
	}
	if len(disks) == 0 {
		missing = append(missing, "--disk")
	}
	if len(missing) > 0 {
		fs.Usage()
		return &cmdline.UsageError{Command: "push-install", Err: fmt.Errorf("push-install: missing %s", strings.Join(missing, ", ")), Remedy: "see docs/server.md, 'Push install'"}
	}
	if *name == "" {
		*name = *host
		if api.ValidName(*name) != nil {
			return &Error{Err: fmt.Errorf("push-install: --host %q is not a machine name", *host), Remedy: "give --name MACHINE ([A-Za-z0-9._-]{1,63})"}
		}
	}
	if err := api.ValidName(*name); err != nil {
		return &Error{Err: fmt.Errorf("push-install: --name: %w", err), Remedy: "machine names are [A-Za-z0-9._-]{1,63}"}
	}
	settings := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return &Error{Err: fmt.Errorf("push-install: --set %q: want KEY=VALUE", s), Remedy: "KEY is a flag of 'lifeboat-agent run' without its dashes"}
		}
		if slices.Contains([]string{"server", "name", "disk", "token-file", "passphrase-file", "config"}, k) {
			return &Error{Err: fmt.Errorf("push-install: --set %s: push-install sets it", k), Remedy: "use --agent-server, --name or --disk"}
		}
		settings[k] = v
	}
	if *pkg == "" {
		p, err := newestPackage()
		if err != nil {
			return err
		}
		*pkg = p
	}
	a, u, err := c.conn.Admin()
	if err != nil {
		return err
	}
	defer a.CloseIdleConnections()
	if *agentServer == "" {
		if *agentServer, err = c.defaultAgentServer(u, *host); err != nil {
			return err
		}
	}
	out := c.main.Stdout
	report := func(s pushinstall.Step) {
		if *asJSON {
			return
		}
		if s.OK {
			fmt.Fprintf(out, "ok    %-18s %s\n", s.Step, s.Detail)
		} else {
			fmt.Fprintf(out, "FAIL  %-18s %s\n", s.Step, s.Error)
		}
	}
	steps, err := pushinstall.Run(ctx, pushinstall.Options{
		SSH: sshx.Config{Host: *host, Port: *port, User: *user, KeyFile: *key, KnownHosts: *knownHosts, AcceptHostKey: *acceptKey,
			Passphrase: terminalPassphrase(c.main.Stderr), AgentSocket: get("SSH_AUTH_SOCK"), NoAgent: get("SSH_AUTH_SOCK") == ""},
		Package: *pkg, AgentServer: *agentServer, Machine: *name, Disks: disks, Settings: settings,
		UploadDir: *uploadDir, TokenTTL: *ttl, Wait: *wait, Server: a, Report: report,
	})
	if *asJSON {
		if steps == nil {
			steps = []pushinstall.Step{}
		}
		if jerr := writeJSON(out, PushInstallResult{Host: *host, Machine: *name, Package: *pkg, OK: err == nil, Steps: steps}); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		if api.Hint(err) != "" {
			return fmt.Errorf("push-install: %w", err)
		}
		return callError(fmt.Errorf("push-install: %w", err), u)
	}
	if !*asJSON {
		fmt.Fprintf(out, "agent %s installed on %s and registered; 'lifeboat machines' shows its replication\n", *name, *host)
	}
	return nil
}

// newestPackage finds the agent .deb 'make package' built in dist/.
func newestPackage() (string, error) {
	ms, _ := filepath.Glob(filepath.Join("dist", "lifeboat-agent_*_"+runtime.GOARCH+".deb"))
	var best string
	var bt time.Time
	for _, m := range ms {
		if fi, err := os.Stat(m); err == nil && fi.ModTime().After(bt) {
			best, bt = m, fi.ModTime()
		}
	}
	if best == "" {
		return "", &Error{Err: errors.New("push-install: no agent package: no --package, and no dist/lifeboat-agent_*_" + runtime.GOARCH + ".deb here"),
			Remedy: "build it with 'make package' in the source tree, or give --package FILE (.deb or .rpm)"}
	}
	return best, nil
}

// defaultAgentServer is the configuration server's address for the host:
// the API address the server bound, unless the host could not reach it.
func (c *PushInstallCommand) defaultAgentServer(apiURL, host string) (string, error) {
	addr := strings.TrimPrefix(apiURL, "https://")
	if c.conn.Data != "" {
		if st, err := statefile.Read(c.conn.Data); err == nil && st.API != "" {
			addr = st.API
		}
	}
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", &Error{Err: fmt.Errorf("push-install: server address %q: %w", addr, err), Remedy: "give --agent-server HOST:PORT"}
	}
	ip := net.ParseIP(h)
	hostIsLocal := host == "localhost"
	if hip := net.ParseIP(host); hip != nil && hip.IsLoopback() {
		hostIsLocal = true
	}
	if h == "" || ip != nil && ip.IsUnspecified() || ip != nil && ip.IsLoopback() && !hostIsLocal {
		return "", &Error{Err: fmt.Errorf("push-install: the server's API listens on %s, which the host %s may not reach", addr, host),
			Remedy: "give --agent-server HOST:PORT: the configuration server's address as the host reaches it"}
	}
	return addr, nil
}

// terminalPassphrase asks for a key's passphrase on the terminal (stdin),
// or is nil when stdin is not one: then a protected key is refused with
// a hint to use ssh-agent.
func terminalPassphrase(prompt io.Writer) func(string) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func(file string) ([]byte, error) {
		fmt.Fprintf(prompt, "Passphrase for %s: ", file)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		return b, err
	}
}
