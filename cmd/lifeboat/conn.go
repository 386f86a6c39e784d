package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
)

// Conn says how to reach the admin API: a data directory on the server
// host, or a URL with the CA and the admin certificate.
type Conn struct {
	Data, Server, CA, Cert, Key string
}

// register adds the connection flags to fs, with defaults from the
// environment or from values already parsed.
func (c *Conn) register(fs *flag.FlagSet, getenv func(string) string) {
	def := func(v, env string) string {
		if v != "" {
			return v
		}
		return getenv(env)
	}
	fs.StringVar(&c.Data, "data", def(c.Data, "LIFEBOAT_DATA"), "server data `DIR` (on the server host; default $LIFEBOAT_DATA)")
	fs.StringVar(&c.Server, "server", def(c.Server, "LIFEBOAT_SERVER"), "admin API `URL` (default $LIFEBOAT_SERVER)")
	fs.StringVar(&c.CA, "ca", def(c.CA, "LIFEBOAT_CA"), "CA certificate `FILE` (default $LIFEBOAT_CA)")
	fs.StringVar(&c.Cert, "cert", def(c.Cert, "LIFEBOAT_CERT"), "admin certificate `FILE` (default $LIFEBOAT_CERT)")
	fs.StringVar(&c.Key, "key", def(c.Key, "LIFEBOAT_KEY"), "admin key `FILE` (default $LIFEBOAT_KEY)")
}

const connHint = "on the server host give --data DIR; elsewhere --server URL --ca ca.crt --cert admin.crt --key admin.key (copies of the server's DIR/ca.crt, DIR/admin.crt, DIR/admin.key)"

// Admin returns a client of the admin API.
func (c *Conn) Admin() (*client.Admin, string, error) {
	u, ca, cert, key := c.Server, c.CA, c.Cert, c.Key
	if c.Data != "" {
		if u == "" {
			st, err := statefile.Read(c.Data)
			if errors.Is(err, os.ErrNotExist) {
				return nil, "", &Error{
					Err:    fmt.Errorf("no %s in %s", statefile.File, c.Data),
					Remedy: "is 'lifeboat-server run --data " + c.Data + "' running? it writes that file when it serves",
				}
			}
			if err != nil {
				return nil, "", err
			}
			if st.APIURL == "" {
				return nil, "", &Error{Err: errors.New("the server runs no configuration role"), Remedy: "run lifeboat-server with --roles including config"}
			}
			u = st.APIURL
		}
		if ca == "" {
			ca = filepath.Join(c.Data, pki.CACertFile)
		}
		if cert == "" {
			cert = filepath.Join(c.Data, pki.AdminCertFile)
		}
		if key == "" {
			key = filepath.Join(c.Data, pki.AdminKeyFile)
		}
	}
	if u == "" {
		return nil, "", &Error{Err: errors.New("no server given"), Remedy: connHint}
	}
	if ca == "" || cert == "" || key == "" {
		return nil, "", &Error{Err: errors.New("--server needs --ca, --cert and --key"), Remedy: connHint}
	}
	read := func(f string) ([]byte, error) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{Err: err, Remedy: connHint}
		}
		return b, nil
	}
	caPEM, err := read(ca)
	if err != nil {
		return nil, "", err
	}
	certPEM, err := read(cert)
	if err != nil {
		return nil, "", err
	}
	keyPEM, err := read(key)
	if err != nil {
		return nil, "", err
	}
	a, err := client.NewAdmin(u, caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, "", &Error{Err: err, Remedy: connHint}
	}
	return a, u, nil
}

// callError adds a hint to an error of a call to the server at u.
func callError(err error, u string) error {
	if api.Hint(err) != "" || errors.Is(err, context.Canceled) {
		return err
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ue) {
		return &Error{Err: err, Remedy: "cannot reach " + u + ": is lifeboat-server running, and is the address right?"}
	}
	return err
}
