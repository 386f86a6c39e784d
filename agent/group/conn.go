package group

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Conn is one connection of the group protocol.
type Conn struct {
	c net.Conn
	r *bufio.Reader
	// Peer is the machine at the other end (its certificate's name).
	Peer string
	// First is the first message a member read (the coordinator's
	// prepare).
	First api.GroupMessage
	mu    sync.Mutex
}

// NewConn wraps c, whose other end is the machine peer.
func NewConn(c net.Conn, peer string) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 4096), Peer: peer}
}

// Close closes the connection.
func (g *Conn) Close() error { return g.c.Close() }

// Send writes one message, by deadline.
func (g *Conn) Send(m api.GroupMessage, deadline time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(m)
	g.c.SetWriteDeadline(deadline)
	_, err := g.c.Write(append(b, '\n'))
	return err
}

// Recv reads one message, by deadline.
func (g *Conn) Recv(deadline time.Time) (api.GroupMessage, error) {
	var m api.GroupMessage
	g.c.SetReadDeadline(deadline)
	line, err := g.r.ReadSlice('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return m, fmt.Errorf("%s did not answer in time", g.Peer)
		}
		return m, fmt.Errorf("connection to %s: %w", g.Peer, err)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("bad message from %s: %w", g.Peer, err)
	}
	return m, nil
}

// Reply answers op with err (nil: ok).
func (g *Conn) Reply(op string, err error, deadline time.Time) error {
	m := api.GroupMessage{Op: op, OK: err == nil}
	if err != nil {
		m.Error = err.Error()
	}
	return g.Send(m, deadline)
}

// VerifyMember checks a chain against the CA, for a machine certificate
// (client auth usage: machine certificates serve both ends here), and
// returns its machine name.
func VerifyMember(pool *x509.CertPool, raw [][]byte) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return "", err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", err
	}
	return certs[0].Subject.CommonName, nil
}

// Dial opens the group connection to member m at addr within timeout and
// checks that the certificate there is m's.
func Dial(ctx context.Context, cert tls.Certificate, pool *x509.CertPool, m, addr string, timeout time.Duration) (*Conn, error) {
	if addr == "" {
		return nil, errors.New("its agent has not reported a group listen address (is it running, with --group-listen?)")
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The name is checked below: members are named by their
		// certificates' CommonName, not by host names.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			cn, err := VerifyMember(pool, raw)
			if err != nil {
				return fmt.Errorf("certificate at %s: %w", addr, err)
			}
			if cn != m {
				return fmt.Errorf("%s answers as %q, not %q", addr, cn, m)
			}
			return nil
		},
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer from %s within %s", addr, timeout)
		}
		return nil, err
	}
	return NewConn(c, m), nil
}

// ListenConfig is the TLS configuration of a member's group listener: it
// accepts only machine certificates of the CA in pool. Every handshake
// presents the certificate cert returns then, so that a renewed
// certificate is served without a restart.
func ListenConfig(cert func() *tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(), nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
	}
}
