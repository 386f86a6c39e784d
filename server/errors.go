package server

import (
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// movingError is the 503 answer to a machine being moved to another
// process server (api.ErrMoving for the agent).
func movingError(msg string) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: msg, Code: api.CodeMoving,
		Remedy: "the agent learns its new process server from the configuration server within seconds and resumes there"}
}
