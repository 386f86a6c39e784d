package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// retryRegistration calls register until it succeeds, fails in a way
// another try cannot fix (a refused passphrase, a process port), or
// retryFor has passed; the wait doubles from 1 s up to 30 s.
func retryRegistration(ctx context.Context, retryFor time.Duration, log *slog.Logger, register func() error) error {
	deadline := time.Now().Add(retryFor)
	wait := time.Second
	for attempt := 1; ; attempt++ {
		err := register()
		if err == nil || !retryable(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Warn("registration failed, retrying", "attempt", attempt, "in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// retryable says whether a registration error may go away by itself: the
// server unreachable, restarting or overloaded; not an answer that refuses
// the machine, nor a TLS handshake that shows a wrong address.
func retryable(err error) bool {
	if isProcessPort(err) {
		return false
	}
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == 429
	}
	return !strings.Contains(err.Error(), "x509:") && !strings.Contains(err.Error(), "tls:")
}

// isProcessPort tells the answer of a process server's listener, which
// asks every client for a certificate before it speaks HTTP.
func isProcessPort(err error) bool {
	return strings.Contains(err.Error(), "certificate required")
}

func registrationError(server string, err error) error {
	if isProcessPort(err) {
		return api.WithHint(fmt.Errorf("register with %s: %w", server, err),
			server+" asks for a client certificate: it is a process server's port (default 9443); --server takes the configuration server's address, its API port (default 443)")
	}
	if h := api.Hint(err); h != "" {
		return fmt.Errorf("register with %s: %w (%s)", server, err, h)
	}
	return api.WithHint(fmt.Errorf("register with %s: %w", server, err),
		"check that the configuration server runs and that this host reaches it (lifeboat-server run, its --api address); --register-timeout sets how long the first registration is retried")
}
