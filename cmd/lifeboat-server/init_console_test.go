package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/console"
)

// TestInitConsoleAdmin: init creates the console's admin account, its
// password in a file only its owner reads, and prints the file, not the
// password.
func TestInitConsoleAdmin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	if err := m.Run(context.Background(), []string{"init", "--data", dir}); err != nil {
		t.Fatalf("init: %v\n%s", err, errOut.String())
	}
	file := filepath.Join(dir, console.Dir, console.AdminPasswordFile)
	if !strings.Contains(out.String(), file) {
		t.Fatalf("init does not say where the console password is:\n%s", out.String())
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", file, err, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	pw := strings.TrimSpace(string(b))
	if strings.Contains(out.String()+errOut.String(), pw) {
		t.Fatal("init printed the console password")
	}
	u, ok, err := console.NewUsers(dir).Check(console.AdminUser, pw)
	if err != nil || !ok || u.Role != api.RoleOperator {
		t.Fatalf("admin account: %+v %v %v", u, ok, err)
	}
}
