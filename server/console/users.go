package console

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
)

const (
	// Dir is the console's directory in the data directory.
	Dir = "console"
	// UsersFile holds the accounts.
	UsersFile = "users.json"
	// AdminPasswordFile holds the initial password of the admin account
	// written by InitAdmin, readable by its owner only.
	AdminPasswordFile = "admin-password"
	// AdminUser is the account InitAdmin creates.
	AdminUser = "admin"
	// MinPassword is the shortest password accepted.
	MinPassword = 12
)

// bcryptCost is bcrypt's cost (2^12 rounds); tests lower it.
var bcryptCost = 12

// account is one stored account.
type account struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"bcrypt"`
	Created time.Time `json:"created"`
}

// Users is the store of the console's accounts. Safe for concurrent use.
type Users struct {
	path string
	mu   sync.Mutex
	// dummy is compared against when a name is unknown, so that a
	// login takes as long for an unknown name as for a wrong password.
	dummy []byte
}

// NewUsers returns the accounts kept in dataDir.
func NewUsers(dataDir string) *Users {
	dummy, _ := bcrypt.GenerateFromPassword([]byte("lifeboat-no-such-user"), bcryptCost)
	return &Users{path: filepath.Join(dataDir, Dir, UsersFile), dummy: dummy}
}

func (u *Users) loadLocked() ([]account, error) {
	var as []account
	err := recdir.ReadFile(u.path, &as)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console accounts: %w", err)
	}
	return as, nil
}

func (u *Users) saveLocked(as []account) error {
	if err := os.MkdirAll(filepath.Dir(u.path), 0o700); err != nil {
		return fmt.Errorf("console accounts: %w", err)
	}
	if err := recdir.WriteFile(u.path, as); err != nil {
		return fmt.Errorf("console accounts: %w", err)
	}
	return nil
}

// ValidRole checks a role name.
func ValidRole(role string) error {
	if role != api.RoleViewer && role != api.RoleOperator {
		return httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("unknown role %q", role), "the roles are viewer (sees) and operator (sees and acts)")
	}
	return nil
}

func validUser(name string) error {
	if err := api.ValidName(name); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad account name: "+err.Error(), "an account name is letters, digits, '.', '_' or '-'")
	}
	return nil
}

// NewPassword returns a random password of 20 characters.
func NewPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Add creates an account; an empty password is chosen at random and
// returned.
func (u *Users) Add(name, role, password string) (api.User, string, error) {
	if err := validUser(name); err != nil {
		return api.User{}, "", err
	}
	if err := ValidRole(role); err != nil {
		return api.User{}, "", err
	}
	chosen := ""
	if password == "" {
		password = NewPassword()
		chosen = password
	}
	if len(password) < MinPassword {
		return api.User{}, "", httpapi.Errorf(http.StatusBadRequest, fmt.Sprintf("password shorter than %d characters", MinPassword), "choose a longer password, or none to have the server choose one")
	}
	if len(password) > 72 {
		return api.User{}, "", httpapi.Errorf(http.StatusBadRequest, "password longer than 72 bytes", "bcrypt uses 72 bytes at most: choose a shorter password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return api.User{}, "", fmt.Errorf("hash password: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	as, err := u.loadLocked()
	if err != nil {
		return api.User{}, "", err
	}
	if slices.ContainsFunc(as, func(a account) bool { return a.Name == name }) {
		return api.User{}, "", httpapi.Errorf(http.StatusConflict, fmt.Sprintf("account %q exists", name), "remove it first with 'lifeboat users remove "+name+"'")
	}
	a := account{Name: name, Role: role, Hash: string(hash), Created: time.Now().UTC().Truncate(time.Second)}
	as = append(as, a)
	slices.SortFunc(as, func(x, y account) int { return strings.Compare(x.Name, y.Name) })
	if err := u.saveLocked(as); err != nil {
		return api.User{}, "", err
	}
	return api.User{Name: a.Name, Role: a.Role, Created: a.Created}, chosen, nil
}

// Remove deletes an account.
func (u *Users) Remove(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	as, err := u.loadLocked()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(as, func(a account) bool { return a.Name == name })
	if i < 0 {
		return httpapi.Errorf(http.StatusNotFound, fmt.Sprintf("no account %q", name), "'lifeboat users list' lists the accounts")
	}
	return u.saveLocked(slices.Delete(as, i, i+1))
}

// List returns the accounts, sorted by name.
func (u *Users) List() ([]api.User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	as, err := u.loadLocked()
	if err != nil {
		return nil, err
	}
	out := make([]api.User, 0, len(as))
	for _, a := range as {
		out = append(out, api.User{Name: a.Name, Role: a.Role, Created: a.Created})
	}
	return out, nil
}

// Check returns the account whose name and password match.
func (u *Users) Check(name, password string) (api.User, bool, error) {
	u.mu.Lock()
	as, err := u.loadLocked()
	u.mu.Unlock()
	if err != nil {
		return api.User{}, false, err
	}
	i := slices.IndexFunc(as, func(a account) bool { return a.Name == name })
	if i < 0 {
		bcrypt.CompareHashAndPassword(u.dummy, []byte(password))
		return api.User{}, false, nil
	}
	a := as[i]
	if bcrypt.CompareHashAndPassword([]byte(a.Hash), []byte(password)) != nil {
		return api.User{}, false, nil
	}
	return api.User{Name: a.Name, Role: a.Role, Created: a.Created}, true, nil
}

// role returns the current role of an account, or false when it was
// removed.
func (u *Users) role(name string) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	as, err := u.loadLocked()
	if err != nil {
		return "", false
	}
	for _, a := range as {
		if a.Name == name {
			return a.Role, true
		}
	}
	return "", false
}

// InitAdmin creates the operator account "admin" in dataDir with a random
// password, written to DATA/console/admin-password (mode 0600) and to no
// log; it returns that file's path. It does nothing when the account
// exists.
func InitAdmin(dataDir string) (string, error) {
	u := NewUsers(dataDir)
	file := filepath.Join(dataDir, Dir, AdminPasswordFile)
	if _, ok := u.role(AdminUser); ok {
		return file, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("console: %w", err)
	}
	pw := NewPassword()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("console: admin password: %w", err)
	}
	_, err = f.WriteString(pw + "\n")
	if err2 := f.Sync(); err == nil {
		err = err2
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return "", fmt.Errorf("console: admin password: %w", err)
	}
	if _, _, err := u.Add(AdminUser, api.RoleOperator, pw); err != nil {
		return "", err
	}
	return file, nil
}
