package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Labels that start the messages of the registration proofs.
const (
	registerLabel = "lifeboat-register-v1\n"
	serverLabel   = "lifeboat-server-v1\n"
)

// RegisterProof is the agent's proof that it knows the passphrase:
// HMAC-SHA256(passphrase, "lifeboat-register-v1\n" + name + "\n" + nonce +
// "\n" + csr), lowercase hex. nonce is the hex text and csr the PEM text,
// exactly as sent.
func RegisterProof(passphrase, name, nonce, csr string) string {
	return mac(passphrase, registerLabel+name+"\n"+nonce+"\n"+csr)
}

// ServerProof is the server's proof that it knows the passphrase:
// HMAC-SHA256(passphrase, "lifeboat-server-v1\n" + nonce + "\n" + ca),
// lowercase hex, with ca the PEM text exactly as sent.
func ServerProof(passphrase, nonce, ca string) string {
	return mac(passphrase, serverLabel+nonce+"\n"+ca)
}

// ProofEqual compares a received proof with the expected one in constant
// time.
func ProofEqual(got, want string) bool {
	g, err1 := hex.DecodeString(got)
	w, err2 := hex.DecodeString(want)
	return err1 == nil && err2 == nil && hmac.Equal(g, w)
}

func mac(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}
