package api

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Paths of the registration-token endpoints (configuration role, admin).
const (
	// PathTokens issues (POST) and lists (GET) one-time registration
	// tokens.
	PathTokens = "/v1/tokens"
	// PathToken revokes (DELETE) one token.
	PathToken = "/v1/tokens/{id}"
)

// Limits of a token's lifetime.
const (
	// DefaultTokenTTL is the lifetime of a token issued with no
	// TTLSeconds.
	DefaultTokenTTL = 15 * time.Minute
	// MaxTokenTTL is the longest lifetime a token may be given.
	MaxTokenTTL = 24 * time.Hour
)

// TokenPrefix starts every registration token: "lbt1.<id>.<secret>", with
// id 16 and secret 64 lowercase hex digits.
const TokenPrefix = "lbt1."

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Machine, if set, is the only machine name the token registers.
	Machine string `json:"machine,omitempty"`
	// TTLSeconds is the token's lifetime; 0 means DefaultTokenTTL.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// Token is a one-time registration token. Token (the secret) is in the
// answer to POST /v1/tokens only, never in a listing.
type Token struct {
	// ID names the token (16 hex digits); it is not secret.
	ID string `json:"id"`
	// Token is the whole token to give the agent (--token-file);
	// only in the answer that issues it.
	Token string `json:"token,omitempty"`
	// Machine is the only machine name it registers, "" for any.
	Machine string `json:"machine"`
	// Created and Expires bound its use.
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// ParseToken splits a registration token into its id and its secret.
// Surrounding white space is ignored.
func ParseToken(s string) (id, secret string, err error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return "", "", errors.New("not a registration token (it starts with " + TokenPrefix + ")")
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || !isHex(id, 16) || !isHex(secret, 64) {
		return "", "", fmt.Errorf("malformed registration token (want %s<16 hex>.<64 hex>)", TokenPrefix)
	}
	return id, secret, nil
}

// ValidTokenID reports whether id can name a token.
func ValidTokenID(id string) bool { return isHex(id, 16) }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
