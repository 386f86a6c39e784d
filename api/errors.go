package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors of the wire contract. A client turns every error answer
// into a *StatusError, which matches (errors.Is) the sentinel of its status,
// so that callers never compare status codes or message strings.
var (
	// ErrBadRequest: the request or its body is malformed (400).
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: no or wrong credentials (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the credentials may not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such machine, disk, point or endpoint (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the server's state (409).
	ErrConflict = errors.New("conflict")
	// ErrSequenceGap: a segment upload out of order; the answer's
	// Expected is the sequence number the server waits for (409 with
	// "expected").
	ErrSequenceGap = errors.New("segment out of sequence")
	// ErrRetired: the machine's protection ended (failed over and
	// committed, or failed back) (410).
	ErrRetired = errors.New("machine retired")
	// ErrTooLarge: the body is over the server's limit (413).
	ErrTooLarge = errors.New("request too large")
	// ErrMisdirected: the machine is served by another process server
	// (421).
	ErrMisdirected = errors.New("machine served by another process server")
	// ErrMoving: the machine is being moved to another process server;
	// retry, and ask the configuration server where it goes (503 with
	// code "moving").
	ErrMoving = errors.New("machine being moved to another process server")
	// ErrUnavailable: the server cannot answer now; retry (503).
	ErrUnavailable = errors.New("server unavailable")
	// ErrCacheFull: the process server's cache is full (507).
	ErrCacheFull = errors.New("process server cache full")
	// ErrServer: any other server-side failure (5xx).
	ErrServer = errors.New("server error")
)

// StatusSentinel returns the sentinel error of an HTTP status code, or nil
// for a success or a status this contract does not name.
func StatusSentinel(status int) error {
	switch status {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusGone:
		return ErrRetired
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusMisdirectedRequest:
		return ErrMisdirected
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusInsufficientStorage:
		return ErrCacheFull
	}
	if status >= 500 {
		return ErrServer
	}
	return nil
}

// StatusError is an error answer as a client received it: its status and
// the body (Error). It matches the sentinel of its status with errors.Is,
// and ErrSequenceGap when the answer says which segment is expected.
type StatusError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the answer's "error" field.
	Message string
	// Remedy is the answer's "hint" for the operator.
	Remedy string
	// Expected is the next sequence number the server waits for, on a
	// 409 answer to a segment upload.
	Expected *uint64
	// Code is the answer's "code" (api.Error).
	Code string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Hint tells the operator what to do, as the server said.
func (e *StatusError) Hint() string { return e.Remedy }

// Is matches the sentinel of the answer's status.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrSequenceGap:
		return e.Status == http.StatusConflict && e.Expected != nil
	case ErrMoving:
		return e.Status == http.StatusServiceUnavailable && e.Code == CodeMoving
	case ErrSegmentConflict:
		return e.Status == http.StatusConflict && e.Code == CodeSegmentConflict
	case ErrSuperseded:
		return e.Status == http.StatusConflict && e.Code == CodeSuperseded
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	s := StatusSentinel(e.Status)
	return s != nil && target == s
}
