package server

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

func errorf(status int, msg, hint string) *Error {
	return &Error{Status: status, Msg: msg, Remedy: hint}
}

// movingError is the 503 answer to a machine being moved to another
// process server (api.ErrMoving for the agent).
func movingError(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Msg: msg, Code: api.CodeMoving,
		Remedy: "the agent learns its new process server from the configuration server within seconds and resumes there"}
}

// handlerFunc is an HTTP handler that returns its error answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h: an error it returns is answered as JSON and logged.
func handle(log *slog.Logger, h handlerFunc) http.Handler {
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
		writeJSON(w, e.Status, api.Error{Error: e.Msg, Hint: e.Remedy, Expected: e.Expected, Code: e.Code})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeJSON decodes a JSON request body of at most max bytes.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
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
