package httpapi

import (
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Moving is the 503 answer to a machine being moved to another process
// server (api.ErrMoving for the agent): the configuration server's own
// process role and a joined process server both give it.
func Moving(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Msg: msg, Code: api.CodeMoving,
		Remedy: "the agent learns its new process server from the configuration server within seconds and resumes there"}
}
