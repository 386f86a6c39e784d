package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Error is an error answer: an HTTP status, a short message and a hint for
// the operator. Err, if set, is the cause, logged but not sent.
type Error struct {
	Status   int
	Msg      string
	Remedy   string
	Expected *uint64
	// Code is the answer's api.Error Code.
	Code string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// Errorf returns the answer status with msg and the hint.
func Errorf(status int, msg, hint string) *Error {
	return &Error{Status: status, Msg: msg, Remedy: hint}
}

// HandlerFunc is an HTTP handler that returns its error answer.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h: an error it returns is answered as JSON and logged.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Msg: "internal error", Remedy: "see the server's log", Err: err}
		}
		lvl := slog.LevelWarn
		if e.Status >= 500 {
			lvl = slog.LevelError
		}
		log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", r.URL.Path, LogStatus, e.Status, LogRemote, r.RemoteAddr, LogErr, e.Error())
		WriteJSON(w, e.Status, api.Error{Error: e.Msg, Hint: e.Remedy, Expected: e.Expected, Code: e.Code})
	})
}

// WriteJSON answers status with v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// DecodeJSON decodes a JSON request body of at most max bytes.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Msg: "request body too large", Remedy: "the body must be a small JSON object", Err: err}
		}
		return &Error{Status: http.StatusBadRequest, Msg: "bad json body: " + err.Error(), Remedy: "see docs/protocol.md for the body of this request", Err: err}
	}
	return nil
}
