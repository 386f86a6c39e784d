package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

func TestUsersAndAudit(t *testing.T) {
	dir := servertest.Init(t)
	servertest.Start(t, servertest.Config(t, dir))
	out := mustRun(t, nil, "--data", dir, "users", "add", "olga", "--role", "operator")
	if !strings.Contains(out, "account olga added (operator)") || !strings.Contains(out, "password (shown once") {
		t.Fatalf("users add:\n%s", out)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("a-long-enough-password\n"), 0o600)
	out = mustRun(t, nil, "--data", dir, "users", "add", "vera", "--role", "viewer", "--password-file", pwFile)
	if strings.Contains(out, "password") {
		t.Fatalf("a chosen password was printed:\n%s", out)
	}
	_, errOut, err := run(t, nil, "--data", dir, "users", "add", "bob", "--role", "admin")
	if err == nil || !strings.Contains(errOut, "viewer (sees) and operator") {
		t.Fatalf("bad role: %v\n%s", err, errOut)
	}
	_, errOut, err = run(t, nil, "--data", dir, "users", "add", "olga", "--role", "viewer")
	if err == nil || !strings.Contains(errOut, "exists") {
		t.Fatalf("second olga: %v\n%s", err, errOut)
	}
	out = mustRun(t, nil, "--data", dir, "users", "list")
	if !strings.Contains(out, "olga") || !strings.Contains(out, "operator") || !strings.Contains(out, "vera") || strings.Contains(out, "a-long-enough") {
		t.Fatalf("users list:\n%s", out)
	}
	mustRun(t, nil, "--data", dir, "users", "remove", "vera")
	if out := mustRun(t, nil, "--data", dir, "users", "list"); strings.Contains(out, "vera") {
		t.Fatalf("vera still listed:\n%s", out)
	}
	out = mustRun(t, nil, "--data", dir, "audit")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// header, olga ok, vera ok, bob failed, olga failed, vera removed
	if len(lines) != 6 || !strings.Contains(lines[1], "admin-certificate") || !strings.Contains(lines[1], "olga (operator)") ||
		!strings.Contains(lines[3], "failed: unknown role") || !strings.Contains(lines[5], "users-remove") {
		t.Fatalf("audit:\n%s", out)
	}
	if strings.Contains(out, "a-long-enough-password") {
		t.Fatalf("audit shows a password:\n%s", out)
	}
}
