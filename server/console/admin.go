package console

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

func asHTTP(err error, target **httpapi.Error) bool { return errors.As(err, target) }

// The handlers below are the admin API's (the administrator's
// certificate is checked by the composition's route table).

// ListUsers handles GET /v1/users.
func (c *Console) ListUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := c.users.List()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, us)
	return nil
}

// AddUser handles POST /v1/users.
func (c *Console) AddUser(w http.ResponseWriter, r *http.Request) error {
	var req api.UserRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	u, chosen, err := c.users.Add(req.Name, req.Role, req.Password)
	target := req.Name + " (" + req.Role + ")"
	if werr := c.record(r, AdminCertUser, "users-add", target, err); werr != nil && err == nil {
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "account added but the audit log cannot be written", Remedy: "see the server's log", Err: werr}
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, api.UserAdded{User: u, Password: chosen})
	return nil
}

// RemoveUser handles DELETE /v1/users/{name}; the account's sessions end.
func (c *Console) RemoveUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	err := c.users.Remove(name)
	if err == nil {
		c.sessions.deleteUser(name)
	}
	c.record(r, AdminCertUser, "users-remove", name, err)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ListAudit handles GET /v1/audit?limit=N (default 100).
func (c *Console) ListAudit(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 100000 {
			return httpapi.Errorf(http.StatusBadRequest, "bad limit "+strconv.Quote(s), "give --limit a positive number")
		}
		limit = n
	}
	es, err := c.audit.Last(limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, es)
	return nil
}
