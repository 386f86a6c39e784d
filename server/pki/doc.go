// Package pki owns the identities of a Lifeboat server: the CA that
// `lifeboat-server init` creates in the data directory, the server
// certificate of the configuration and process listeners, the
// administrator's client certificate, the registration passphrase, and the
// machine certificates issued from CSRs at registration.
//
// It must never overwrite an existing CA (that would orphan every
// registered agent), never write a private key readable by others, and
// never issue a machine certificate that can act as a server or a CA.
package pki
