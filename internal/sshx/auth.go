package sshx

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authMethods returns how Dial authenticates: the key of cfg.KeyFile
// (its passphrase asked through cfg.Passphrase when it has one), then the
// keys an ssh-agent holds (cfg.AgentSocket, default $SSH_AUTH_SOCK). The
// second value describes them for the operator; the closer ends the
// agent connection.
func authMethods(cfg Config) ([]ssh.AuthMethod, []string, func(), error) {
	var methods []ssh.AuthMethod
	var keys []string
	closer := func() {}
	if cfg.KeyFile != "" {
		s, err := loadKey(cfg.KeyFile, cfg.Passphrase)
		if err != nil {
			return nil, nil, closer, err
		}
		methods = append(methods, ssh.PublicKeys(s))
		keys = append(keys, cfg.KeyFile+" ("+pubLine(s)+")")
	}
	sock := cfg.AgentSocket
	if sock == "" && !cfg.NoAgent {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" && !cfg.NoAgent {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			if cfg.KeyFile == "" {
				return nil, nil, closer, &Error{Kind: KindKey, Err: fmt.Errorf("ssh-agent at %s: %w", sock, err),
					Remedy: "start ssh-agent and ssh-add the key (SSH_AUTH_SOCK must name its socket), or give --key FILE"}
			}
		} else {
			ag := agent.NewClient(conn)
			closer = func() { conn.Close() }
			signers, err := ag.Signers()
			if err == nil && len(signers) > 0 {
				methods = append(methods, ssh.PublicKeys(signers...))
				for _, s := range signers {
					keys = append(keys, "ssh-agent ("+pubLine(s)+")")
				}
			} else if cfg.KeyFile == "" {
				conn.Close()
				return nil, nil, func() {}, &Error{Kind: KindKey, Err: fmt.Errorf("ssh-agent at %s holds no key", sock),
					Remedy: "add the key to the agent (ssh-add FILE), or give --key FILE"}
			}
		}
	}
	if len(methods) == 0 {
		return nil, nil, closer, &Error{Kind: KindKey, Err: errors.New("no SSH key: no --key and no ssh-agent (SSH_AUTH_SOCK)"),
			Remedy: "give --key FILE (the private key authorized on the host), or load it into ssh-agent with ssh-add"}
	}
	return methods, keys, closer, nil
}

func loadKey(file string, passphrase func(file string) ([]byte, error)) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{Kind: KindKey, Err: fmt.Errorf("ssh key: %w", err), Remedy: "give --key the private key file whose public key is in the host's authorized_keys"}
	}
	s, err := ssh.ParsePrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		if passphrase == nil {
			return nil, &Error{Kind: KindKey, Err: fmt.Errorf("ssh key %s is protected by a passphrase and no terminal can ask for it", file),
				Remedy: "run the command on a terminal to be asked for the passphrase, or load the key into ssh-agent (ssh-add " + file + ")"}
		}
		pass, perr := passphrase(file)
		if perr != nil {
			return nil, &Error{Kind: KindKey, Err: fmt.Errorf("ssh key %s: read the passphrase: %w", file, perr),
				Remedy: "run the command on a terminal, or load the key into ssh-agent (ssh-add " + file + ")"}
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(b, pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, &Error{Kind: KindKey, Err: fmt.Errorf("ssh key %s: wrong passphrase", file), Remedy: "give the key's passphrase"}
		}
	}
	if err != nil {
		return nil, &Error{Kind: KindKey, Err: fmt.Errorf("ssh key %s: %w", file, err),
			Remedy: "--key must be a private key (OpenSSH or PEM format), not the .pub file"}
	}
	return s, nil
}
