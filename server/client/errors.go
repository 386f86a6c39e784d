package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lifeboat-dr/lifeboat/server/api"
)

// APIError is an error answer of the server: its status and the body of
// docs/protocol.md.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's "error" field.
	Message string
	// Hint is the server's "hint" for the operator.
	Hint string
	// Expected is the next sequence number the server waits for, on a
	// 409 answer to a segment upload.
	Expected *uint64
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Error is an error of this package with a hint for the operator.
type Error struct {
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint returns the operator hint of err (an *APIError or *Error in its
// chain), or "".
func Hint(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Hint
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Hint
	}
	return ""
}

// ErrServerProof is wrapped by Register when the server cannot prove that
// it knows the passphrase, or its TLS certificate does not chain to the CA
// it sent: it is not the genuine configuration server.
var ErrServerProof = errors.New("server failed to prove its identity")

// readError turns a non-2xx answer into an *APIError.
func readError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var ae api.Error
	if json.Unmarshal(body, &ae) == nil && ae.Error != "" {
		e.Message, e.Hint, e.Expected = ae.Error, ae.Hint, ae.Expected
	} else {
		e.Message = strings.TrimSpace(string(body))
		if e.Message == "" {
			e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		}
	}
	return e
}
