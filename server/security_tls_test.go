package server_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// The configuration port refuses TLS 1.2 with CBC or SHA-1 suites and
// accepts TLS 1.3 and TLS 1.2 with an AEAD suite (issue 18, item 9).
func TestAPIPortTLSSuites(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	dial := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		cfg.InsecureSkipVerify = true
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.APIAddr(), cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	} {
		if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}); err == nil {
			t.Errorf("TLS 1.2 with %s accepted", tls.CipherSuiteName(suite))
		}
	}
	st, err := dial(&tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		t.Fatalf("TLS 1.2 with an AEAD suite refused: %v", err)
	}
	if st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("suite %s", tls.CipherSuiteName(st.CipherSuite))
	}
	st, err = dial(&tls.Config{})
	if err != nil {
		t.Fatalf("default client: %v", err)
	}
	if st.Version != tls.VersionTLS13 {
		t.Errorf("default client got version %x, want TLS 1.3", st.Version)
	}
}
