package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/lifeboat-dr/lifeboat/api"
)

// APIError is the error answer of a server; see api.StatusError.
type APIError = api.StatusError

// Error is an error of this package with a hint for the operator.
type Error struct {
	Err    error
	Remedy string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

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
		e.Message, e.Remedy, e.Expected, e.Code = ae.Error, ae.Hint, ae.Expected, ae.Code
	} else {
		e.Message = strings.TrimSpace(string(body))
		if e.Message == "" {
			e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		}
	}
	return e
}
