package api

import "time"

// The console's accounts and audit log, reached over the admin API with
// the administrator's certificate (docs/console.md).
const (
	// PathUsers lists (GET) and adds (POST) the console's accounts.
	PathUsers = "/v1/users"
	// PathUser removes (DELETE) one account.
	PathUser = "/v1/users/{name}"
	// PathAudit lists the newest entries of the audit log (GET,
	// ?limit=N).
	PathAudit = "/v1/audit"
)

// Console roles (User.Role): a viewer sees, an operator also acts.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// User is a console account as listed; its password hash is never shown.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

// UserRequest adds an account. An empty Password makes the server choose
// one, returned once in UserAdded.
type UserRequest struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

// UserAdded answers POST /v1/users. Password is set only when the server
// chose it; it is shown nowhere else.
type UserAdded struct {
	User     User   `json:"user"`
	Password string `json:"password,omitempty"`
}

// AuditEntry is one line of the audit log: who did what, when, and how it
// ended.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// User is the console account, or "admin-certificate" for the admin
	// API, or the name tried at a failed login.
	User string `json:"user"`
	// Action is login, logout, failover, test-failover, commit,
	// users-add, users-remove...
	Action string `json:"action"`
	// Target is what the action was on: a machine and point, an account.
	Target string `json:"target,omitempty"`
	// Result is "ok", "refused: why" or "failed: why".
	Result string `json:"result"`
	Remote string `json:"remote,omitempty"`
}
