package configsrv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
)

// TokensFile holds the one-time registration tokens not yet used nor
// expired (secrets included: mode 0600, like DATA/passphrase).
const TokensFile = "tokens.json"

// tokenRecord is a token as the server keeps it.
type tokenRecord struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	Machine string    `json:"machine,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func (t tokenRecord) api() api.Token {
	return api.Token{ID: t.ID, Machine: t.Machine, Created: t.Created, Expires: t.Expires}
}

// Tokens owns DATA/tokens.json. A token is removed when it is used,
// revoked or found expired; the file is rewritten crash-safely on every
// change, so a used token stays used across a restart.
type Tokens struct {
	path string
	log  *slog.Logger // component "config"
	mu   sync.Mutex
	m    map[string]tokenRecord // by ID; loaded lazily
}

// NewTokens returns the tokens of the data directory dataDir; the file is
// read when first needed.
func NewTokens(dataDir string, log *slog.Logger) *Tokens {
	if log == nil {
		log = slog.Default()
	}
	return &Tokens{path: filepath.Join(dataDir, TokensFile), log: log.With(httpapi.LogComponent, "config")}
}

// loadLocked reads the file the first time.
func (ts *Tokens) loadLocked() error {
	if ts.m != nil {
		return nil
	}
	m := map[string]tokenRecord{}
	var list []tokenRecord
	if err := recdir.ReadFile(ts.path, &list); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("load tokens: %w", err)
	}
	for _, t := range list {
		m[t.ID] = t
	}
	ts.m = m
	return nil
}

// saveLocked drops expired tokens and writes the file.
func (ts *Tokens) saveLocked(now time.Time) error {
	list := make([]tokenRecord, 0, len(ts.m))
	for id, t := range ts.m {
		if !now.Before(t.Expires) {
			delete(ts.m, id)
			continue
		}
		list = append(list, t)
	}
	slices.SortFunc(list, func(a, b tokenRecord) int { return a.Created.Compare(b.Created) })
	if err := recdir.WriteFile(ts.path, list); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return nil
}

// issue makes a new token.
func (ts *Tokens) issue(machine string, ttl time.Duration, now time.Time) (api.Token, error) {
	idb, secb := make([]byte, 8), make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return api.Token{}, err
	}
	if _, err := rand.Read(secb); err != nil {
		return api.Token{}, err
	}
	t := tokenRecord{ID: hex.EncodeToString(idb), Secret: hex.EncodeToString(secb), Machine: machine,
		Created: now.UTC(), Expires: now.Add(ttl).UTC()}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.loadLocked(); err != nil {
		return api.Token{}, err
	}
	ts.m[t.ID] = t
	if err := ts.saveLocked(now); err != nil {
		delete(ts.m, t.ID)
		return api.Token{}, err
	}
	a := t.api()
	a.Token = api.TokenPrefix + t.ID + "." + t.Secret
	return a, nil
}

// list returns the live tokens, oldest first, without their secrets.
func (ts *Tokens) list(now time.Time) ([]api.Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.loadLocked(); err != nil {
		return nil, err
	}
	out := []api.Token{}
	for _, t := range ts.m {
		if now.Before(t.Expires) {
			out = append(out, t.api())
		}
	}
	slices.SortFunc(out, func(a, b api.Token) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// revoke removes a token; false if there was no such live token.
func (ts *Tokens) revoke(id string, now time.Time) (api.Token, bool, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.loadLocked(); err != nil {
		return api.Token{}, false, err
	}
	t, ok := ts.m[id]
	if !ok || !now.Before(t.Expires) {
		return api.Token{}, false, nil
	}
	delete(ts.m, id)
	if err := ts.saveLocked(now); err != nil {
		ts.m[id] = t
		return api.Token{}, false, err
	}
	return t.api(), true, nil
}

// ErrTokenUnknown is Use's error for a token that cannot register.
var ErrTokenUnknown = errors.New("registration token unknown, already used, revoked or expired")

// Use runs f with the secret of a live token meant for machine, and
// whether it was issued for that very name (an operator's approval to
// register an existing name again), and removes the token (durably) if f
// succeeds: a token registers at most one machine once. The lock is held
// throughout, so two registrations racing with one token cannot both
// succeed.
func (ts *Tokens) Use(id, machine string, now time.Time, f func(secret string, forName bool) error) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.loadLocked(); err != nil {
		return err
	}
	t, ok := ts.m[id]
	if !ok || !now.Before(t.Expires) {
		return ErrTokenUnknown
	}
	if t.Machine != "" && t.Machine != machine {
		return &httpapi.Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("registration token %s is for machine %q, not %q", id, t.Machine, machine),
			Remedy: "set the agent's --name to the machine the token was issued for, or issue a token for this name"}
	}
	if err := f(t.Secret, t.Machine == machine); err != nil {
		return err
	}
	delete(ts.m, id)
	if err := ts.saveLocked(now); err != nil {
		ts.m[id] = t
		return err
	}
	return nil
}

// TokenHint is the remedy of a registration refused for its token.
const TokenHint = "issue a new token ('lifeboat push-install' does, or POST /v1/tokens) and give it to the agent with --token-file"

// Create handles POST /v1/tokens (admin).
func (ts *Tokens) Create(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	if req.Machine != "" {
		if err := api.ValidName(req.Machine); err != nil {
			return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "machine names are [A-Za-z0-9._-]{1,63}")
		}
		if req.Machine == api.AdminName {
			return httpapi.Errorf(http.StatusBadRequest, "machine name \"admin\" is reserved", "issue the token for another machine name")
		}
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	switch {
	case req.TTLSeconds == 0:
		ttl = api.DefaultTokenTTL
	case req.TTLSeconds < 0 || req.TTLSeconds > int64(api.MaxTokenTTL/time.Second):
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("ttl_seconds %d out of range", req.TTLSeconds),
			fmt.Sprintf("give 1 to %d seconds, or 0 for the default %s", int64(api.MaxTokenTTL/time.Second), api.DefaultTokenTTL))
	}
	t, err := ts.issue(req.Machine, ttl, time.Now())
	if err != nil {
		return err
	}
	ts.log.Info("registration token issued", "token_id", t.ID, httpapi.LogMachine, t.Machine, "expires", t.Expires)
	httpapi.WriteJSON(w, http.StatusCreated, t)
	return nil
}

// List handles GET /v1/tokens (admin).
func (ts *Tokens) List(w http.ResponseWriter, r *http.Request) error {
	list, err := ts.list(time.Now())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, list)
	return nil
}

// Revoke handles DELETE /v1/tokens/{id} (admin).
func (ts *Tokens) Revoke(w http.ResponseWriter, r *http.Request) error {
	id := strings.ToLower(r.PathValue("id"))
	if !api.ValidTokenID(id) {
		return httpapi.Errorf(http.StatusBadRequest, "bad token id "+fmt.Sprintf("%q", id), "a token id is 16 hex digits: GET /v1/tokens lists them")
	}
	t, ok, err := ts.revoke(id, time.Now())
	if err != nil {
		return err
	}
	if !ok {
		return httpapi.Errorf(http.StatusNotFound, "no live token "+id, "it was used, revoked or has expired: GET /v1/tokens lists the live ones")
	}
	ts.log.Info("registration token revoked", "token_id", id)
	httpapi.WriteJSON(w, http.StatusOK, t)
	return nil
}
