package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Kinds of Error.
const (
	KindKey         = "bad-key"          // the private key file cannot be used
	KindAuth        = "auth-failed"      // the server refused the key
	KindUnknownHost = "unknown-host-key" // no known_hosts line for the host
	KindChangedHost = "changed-host-key" // known_hosts holds another key
	KindConnect     = "connect"          // no TCP connection or SSH handshake
)

// Error is a connection error with a hint for the operator.
type Error struct {
	Kind string
	// Fingerprint is the host key's SHA256 fingerprint (host key errors).
	Fingerprint string
	Err         error
	Remedy      string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// Config says how to connect.
type Config struct {
	// Host and Port of the SSH server.
	Host string
	Port int
	// User to log in as.
	User string
	// KeyFile is the private key (OpenSSH or PEM); "" to use only the
	// keys of an ssh-agent.
	KeyFile string
	// Passphrase, if set, is asked for the passphrase of a protected
	// KeyFile (a terminal prompt); nil: such a key is refused with a
	// hint.
	Passphrase func(file string) ([]byte, error)
	// AgentSocket is the ssh-agent's socket (default $SSH_AUTH_SOCK);
	// its keys are tried after KeyFile's. NoAgent ignores any agent.
	AgentSocket string
	NoAgent     bool
	// KnownHosts is the known_hosts file that must hold the host's key.
	// A missing file is an empty one.
	KnownHosts string
	// AcceptHostKey, if set, is the "SHA256:..." fingerprint of a host key
	// the operator accepts for a host KnownHosts does not know yet: the
	// key is then added to KnownHosts. It never overrides a changed key.
	AcceptHostKey string
	// Timeout bounds the TCP connection and the handshake (default 30s).
	Timeout time.Duration
}

// Client is an SSH connection.
type Client struct {
	c *ssh.Client
	// AddedHostKey is true when Dial added the host's key to KnownHosts.
	AddedHostKey bool
	// Fingerprint is the verified host key's SHA256 fingerprint.
	Fingerprint string
}

// Dial connects and authenticates, verifying the host key.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	auth, keys, closeAgent, err := authMethods(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAgent() // the agent signs during the handshake only
	addr := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	cl := &Client{}
	hk, err := hostKeyCallback(cfg, cl)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Error{Kind: KindConnect, Err: fmt.Errorf("connect to %s: %w", addr, err),
			Remedy: "check --host and --port, that sshd runs there and that no firewall is in the way"}
	}
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            auth,
		HostKeyCallback: hk,
		Timeout:         cfg.Timeout,
	})
	if err != nil {
		conn.Close()
		var he *Error
		if errors.As(err, &he) {
			return nil, he
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &Error{Kind: KindAuth,
				Err: fmt.Errorf("ssh %s@%s: authentication failed with %s", cfg.User, addr, strings.Join(keys, ", ")),
				Remedy: fmt.Sprintf("the host does not accept these keys for user %q: add the public key to ~%s/.ssh/authorized_keys on the host, or give the right --key/--user",
					cfg.User, cfg.User)}
		}
		return nil, &Error{Kind: KindConnect, Err: fmt.Errorf("ssh handshake with %s: %w", addr, err),
			Remedy: "is an SSH server listening on that port?"}
	}
	conn.SetDeadline(time.Time{})
	cl.c = ssh.NewClient(sc, chans, reqs)
	return cl, nil
}

func pubLine(s ssh.Signer) string {
	return s.PublicKey().Type() + " " + ssh.FingerprintSHA256(s.PublicKey())
}

// hostKeyCallback checks host keys against cfg.KnownHosts.
func hostKeyCallback(cfg Config, cl *Client) (ssh.HostKeyCallback, error) {
	if cfg.KnownHosts == "" {
		return nil, &Error{Kind: KindUnknownHost, Err: errors.New("no known_hosts file given"),
			Remedy: "give --known-hosts FILE (e.g. ~/.ssh/known_hosts); the host's key must be in it"}
	}
	if _, err := os.Stat(cfg.KnownHosts); errors.Is(err, os.ErrNotExist) {
		// An empty file: every host is unknown.
		if err := os.MkdirAll(filepath.Dir(cfg.KnownHosts), 0o700); err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		if err := os.WriteFile(cfg.KnownHosts, nil, 0o600); err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	kh, err := knownhosts.New(cfg.KnownHosts)
	if err != nil {
		return nil, &Error{Kind: KindUnknownHost, Err: fmt.Errorf("known_hosts %s: %w", cfg.KnownHosts, err),
			Remedy: "fix or remove the bad line of that file"}
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		err := kh(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			cl.Fingerprint = fp
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return &Error{Kind: KindChangedHost, Fingerprint: fp,
				Err: fmt.Errorf("host key of %s CHANGED: it offers %s %s, %s:%d holds another", hostname, key.Type(), fp, ke.Want[0].Filename, ke.Want[0].Line),
				Remedy: fmt.Sprintf("someone may be intercepting the connection; if the host was reinstalled, check its new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), remove the old line (ssh-keygen -R '%s' -f %s) and accept the new key",
					keyFileType(key), knownhosts.Normalize(hostname), cfg.KnownHosts)}
		case errors.As(err, &ke):
			if cfg.AcceptHostKey != "" && cfg.AcceptHostKey == fp {
				line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
				f, err := os.OpenFile(cfg.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
				if err != nil {
					return fmt.Errorf("accept host key: %w", err)
				}
				_, werr := fmt.Fprintln(f, line)
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return fmt.Errorf("accept host key: %w", werr)
				}
				cl.AddedHostKey, cl.Fingerprint = true, fp
				return nil
			}
			msg := fmt.Sprintf("unknown host key: %s offers %s %s, not in %s", hostname, key.Type(), fp, cfg.KnownHosts)
			if cfg.AcceptHostKey != "" {
				msg += fmt.Sprintf(" (--accept-host-key %s does not match)", cfg.AcceptHostKey)
			}
			return &Error{Kind: KindUnknownHost, Fingerprint: fp, Err: errors.New(msg),
				Remedy: fmt.Sprintf("check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then accept it with --accept-host-key %s, or add it with: ssh-keyscan -p %d %s >> %s",
					keyFileType(key), fp, portOf(hostname, cfg.Port), cfg.Host, cfg.KnownHosts)}
		default:
			return err
		}
	}, nil
}

func portOf(hostname string, def int) int {
	if _, p, err := net.SplitHostPort(hostname); err == nil {
		var n int
		if _, err := fmt.Sscan(p, &n); err == nil {
			return n
		}
	}
	return def
}

// keyFileType names the host key file of a key type.
func keyFileType(k ssh.PublicKey) string {
	switch t := k.Type(); {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "*"
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Result is the outcome of a command.
type Result struct {
	Stdout, Stderr string
	// Exit is the exit status; -1 if the command died by a signal or the
	// connection broke.
	Exit int
}

// Run runs cmd (a shell command line) with stdin (may be nil). A non-zero
// exit is not an error: see Result.Exit. ctx cancels the command.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	s, err := c.c.NewSession()
	if err != nil {
		return Result{Exit: -1}, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		<-done
		return Result{Stdout: out.String(), Stderr: errb.String(), Exit: -1}, ctx.Err()
	}
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *ssh.ExitError
	var me *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitStatus()
		if ee.Signal() != "" {
			r.Exit = -1
		}
	case errors.As(err, &me):
		r.Exit = -1
	default:
		r.Exit = -1
		return r, fmt.Errorf("ssh run: %w", err)
	}
	return r, nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
