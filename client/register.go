package client

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Register registers the machine name with the configuration server at
// addr ("host:port" or an https URL) once, as docs/protocol.md says: it
// sends a CSR for key with an HMAC proof of the passphrase (never the
// passphrase), then accepts the answer only if the server proved that it
// knows the passphrase too and the TLS certificate of this very connection
// chains to the CA it sent. It returns the machine's certificate (PEM, for
// key), the CA (PEM) to trust from now on, and the process server's
// host:port.
//
// Before the answer is checked the connection is not authenticated: the
// only thing a forged server can learn is one HMAC of the passphrase.
func Register(ctx context.Context, addr, name, passphrase string, key crypto.Signer) (cert, caPEM []byte, processAddr string, err error) {
	if passphrase == "" {
		return nil, nil, "", errors.New("register: empty passphrase")
	}
	return register(ctx, addr, name, "", passphrase, key)
}

// RegisterWithToken registers like Register, with a one-time registration
// token (api.ParseToken's format) in place of the passphrase: its secret
// keys both proofs and is never sent. The server uses the token up when
// the registration succeeds.
func RegisterWithToken(ctx context.Context, addr, name, token string, key crypto.Signer) (cert, caPEM []byte, processAddr string, err error) {
	id, secret, err := api.ParseToken(token)
	if err != nil {
		return nil, nil, "", &Error{Err: fmt.Errorf("register: %w", err), Remedy: "the token file must hold the token the server issued (POST /v1/tokens), on one line"}
	}
	return register(ctx, addr, name, id, secret, key)
}

// register registers with the passphrase, or with the secret of token
// tokenID when it is set.
func register(ctx context.Context, addr, name, tokenID, passphrase string, key crypto.Signer) (cert, caPEM []byte, processAddr string, err error) {
	if err := api.ValidName(name); err != nil {
		return nil, nil, "", fmt.Errorf("register: machine %w", err)
	}
	base, err := baseURL(addr)
	if err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("register: create csr: %w", err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	nb := make([]byte, 32)
	if _, err := rand.Read(nb); err != nil {
		return nil, nil, "", fmt.Errorf("register: nonce: %w", err)
	}
	nonce := hex.EncodeToString(nb)
	req := api.RegisterRequest{Name: name, Nonce: nonce, CSR: csr, TokenID: tokenID, PassphraseProof: api.RegisterProof(passphrase, name, nonce, csr)}

	// No CA is known yet: the server is authenticated below, after the
	// answer, by its proof and the chain of this connection's certificate.
	hc := newHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true})
	defer hc.CloseIdleConnections()
	body, err := jsonBody(req)
	if err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	ctx, cancel := bound(ctx, callTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+api.PathRegister, body)
	if err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	defer resp.Body.Close()
	var ans api.RegisterResponse
	if err := decode(resp, &ans); err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	if err := checkRegistration(resp.TLS, ans, passphrase, nonce, name, key.Public()); err != nil {
		return nil, nil, "", fmt.Errorf("register: %w", err)
	}
	return []byte(ans.Certificate), []byte(ans.CA), ans.ProcessServer, nil
}

// checkRegistration checks the answer to a registration: the server's
// proof, the chain of the TLS peer to the CA sent, and the certificate
// issued.
func checkRegistration(cs *tls.ConnectionState, ans api.RegisterResponse, passphrase, nonce, name string, pub crypto.PublicKey) error {
	forged := func(format string, args ...any) error {
		return &Error{
			Err:    fmt.Errorf("%w: "+format, append([]any{ErrServerProof}, args...)...),
			Remedy: "this is not the configuration server that issued the passphrase (or the passphrase is wrong): check --server and the passphrase file",
		}
	}
	if !api.ProofEqual(ans.ServerProof, api.ServerProof(passphrase, nonce, ans.CA)) {
		return forged("wrong server proof")
	}
	ca, err := parseCA([]byte(ans.CA))
	if err != nil {
		return forged("ca: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return forged("no TLS peer certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	// The host name is not checked: the CA is proven genuine, and a
	// certificate it issued proves the peer is its server, whichever
	// address the agent used.
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return forged("the TLS peer's certificate does not chain to the CA sent: %v", err)
	}
	blk, _ := pem.Decode([]byte(ans.Certificate))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("answer holds no certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("certificate issued does not chain to the ca: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := cert.PublicKey.(equaler); !ok || !e.Equal(pub) {
		return errors.New("certificate issued is not for our key")
	}
	if cert.Subject.CommonName != name {
		return fmt.Errorf("certificate issued for %q, not %q", cert.Subject.CommonName, name)
	}
	if ans.ProcessServer == "" {
		return errors.New("answer names no process server")
	}
	return nil
}

func parseCA(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if !c.IsCA {
		return nil, errors.New("not a CA certificate")
	}
	return c, nil
}
