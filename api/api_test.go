package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestProofs(t *testing.T) {
	m := hmac.New(sha256.New, []byte("pass"))
	m.Write([]byte("lifeboat-register-v1\nweb1\nab12\n-----CSR-----\n"))
	if got, want := RegisterProof("pass", "web1", "ab12", "-----CSR-----\n"), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("RegisterProof %s, want %s", got, want)
	}
	m = hmac.New(sha256.New, []byte("pass"))
	m.Write([]byte("lifeboat-server-v1\nab12\n-----CA-----\n"))
	if got, want := ServerProof("pass", "ab12", "-----CA-----\n"), hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("ServerProof %s, want %s", got, want)
	}
	p := ServerProof("pass", "n", "ca")
	if !ProofEqual(p, p) || ProofEqual(p, ServerProof("pass2", "n", "ca")) || ProofEqual("zz", "zz") {
		t.Error("ProofEqual")
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"web1", "a", "db-01.example_x", "..."} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "é", string(long), "x\x00"} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
