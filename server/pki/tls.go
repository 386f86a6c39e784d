package pki

import "crypto/tls"

// APICipherSuites are the only TLS 1.2 suites the configuration port
// accepts: ECDHE key exchange with an AEAD cipher (AES-GCM or
// ChaCha20-Poly1305). TLS 1.3's suites are all AEAD and are not
// configurable. CBC and SHA-1 suites are never offered (docs/security.md).
var APICipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// APITLSConfig returns the TLS settings of the configuration port (:443):
// TLS 1.3, or TLS 1.2 with APICipherSuites only, serving cert. A client
// certificate is asked for but not required (registration comes without
// one); the handlers check the one they get. A revoked one fails the
// handshake (rev; nil: no list).
func APITLSConfig(cert tls.Certificate, rev *Revocations) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: APICipherSuites,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
	}
	if rev != nil {
		cfg.VerifyConnection = rev.VerifyConnection
	}
	return cfg
}
