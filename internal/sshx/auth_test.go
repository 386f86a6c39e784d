package sshx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// sshServer accepts public-key logins of authorized and runs nothing:
// a real SSH handshake (golang.org/x/crypto/ssh's server side).
func sshServer(t *testing.T, authorized ssh.PublicKey) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	hs, err := ssh.NewSignerFromKey(hk)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), authorized.Marshal()) {
			return nil, nil
		}
		return nil, os.ErrPermission
	}}
	cfg.AddHostKey(hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					c.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "no sessions here")
				}
			}()
		}
	}()
	return l.Addr().String(), hs.PublicKey()
}

func dialCfg(t *testing.T, addr string, hostKey ssh.PublicKey) Config {
	host, port, _ := net.SplitHostPort(addr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	p, _ := strconv.Atoi(port)
	return Config{Host: host, Port: p, User: "root", KnownHosts: kh, AcceptHostKey: ssh.FingerprintSHA256(hostKey), Timeout: 10 * time.Second}
}

func TestDialWithSSHAgentKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	addr, hk := sshServer(t, signer.PublicKey())

	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()

	cfg := dialCfg(t, addr, hk)
	cfg.AgentSocket = sock // no --key: the agent's key only
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial with the ssh-agent's key: %v", err)
	}
	c.Close()

	// An agent with no key is refused with a hint, not a handshake error.
	empty := filepath.Join(t.TempDir(), "empty.sock")
	l2, _ := net.Listen("unix", empty)
	defer l2.Close()
	go func() {
		c, err := l2.Accept()
		if err == nil {
			agent.ServeAgent(agent.NewKeyring(), c)
		}
	}()
	cfg.AgentSocket = empty
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "holds no key") {
		t.Fatalf("empty agent: %v", err)
	}
}

func TestDialWithPassphraseProtectedKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	addr, hk := sshServer(t, signer.PublicKey())
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := dialCfg(t, addr, hk)
	cfg.KeyFile, cfg.NoAgent = keyFile, true

	// No terminal: refused with the remedy.
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.(*Error).Hint(), "ssh-agent") {
		t.Fatalf("protected key without a prompt: %v", err)
	}
	// Wrong passphrase, then the right one.
	cfg.Passphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	asked := 0
	cfg.Passphrase = func(f string) ([]byte, error) { asked++; return []byte("s3cret"), nil }
	c, err := Dial(context.Background(), cfg)
	if err != nil || asked != 1 {
		t.Fatalf("right passphrase: %v (asked %d times)", err, asked)
	}
	c.Close()
}
