package server_test

import (
	"crypto/x509"
	"testing"
)

func newPool(t *testing.T, caPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	return p
}
