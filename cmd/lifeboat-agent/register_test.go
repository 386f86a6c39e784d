package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// An agent given the process port instead of the configuration port is
// told so, at once (no retries), with the address to use instead.
func TestRegisterAtProcessPortSaysUseConfigServer(t *testing.T) {
	data := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, data))
	state := t.TempDir()
	start := time.Now()
	_, err := loadOrRegister(context.Background(), state, s.ProcessAddr(), filepath.Join(data, "passphrase"), "", "m1",
		time.Minute, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("registration at the process port succeeded")
	}
	if h := api.Hint(err); !strings.Contains(h, "process server's port") || !strings.Contains(h, "configuration server") {
		t.Fatalf("error %v, hint %q: does not say to use the configuration server", err, h)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s: a wrong port must not be retried", d)
	}
	if _, err := os.Stat(filepath.Join(state, "identity")); !os.IsNotExist(err) {
		t.Fatalf("identity written after a failed registration (%v)", err)
	}
}

func TestRetryRegistrationBacksOffOnlyWhenItMayHelp(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	n := 0
	start := time.Now()
	err := retryRegistration(context.Background(), time.Minute, log, func() error {
		n++
		if n < 3 {
			return &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("server down twice then up: err %v after %d attempts", err, n)
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Fatalf("no backoff: 3 attempts in %s (want waits of 1 s and 2 s)", d)
	}

	n = 0
	refused := &api.StatusError{Status: 401, Message: "wrong passphrase"}
	err = retryRegistration(context.Background(), time.Minute, log, func() error { n++; return refused })
	if !errors.Is(err, refused) || n != 1 {
		t.Fatalf("a refused passphrase was retried: %d attempts, %v", n, err)
	}

	n = 0
	err = retryRegistration(context.Background(), 0, log, func() error {
		n++
		return &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
	})
	if err == nil || n != 1 {
		t.Fatalf("--register-timeout 0: %d attempts, %v", n, err)
	}
}
