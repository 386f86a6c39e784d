package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// Guessing the registration passphrase is slowed down per address: after
// a few wrong proofs every attempt is refused until a growing delay has
// passed, the right passphrase included, and a burst raises an alert
// (issue 18, item 8).
func TestRegistrationGuessesRateLimited(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	pass, err := pki.ReadPassphrase(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wrong, limited int
	start := time.Now()
	for range 40 {
		_, _, _, err := client.Register(ctx, s.APIAddr(), "web1", "not-the-passphrase", key)
		switch {
		case errors.Is(err, api.ErrRateLimited):
			limited++
		case errors.Is(err, api.ErrUnauthorized):
			wrong++
		default:
			t.Fatalf("wrong passphrase: %v", err)
		}
	}
	t.Logf("40 wrong proofs in %v: %d checked (401), %d refused unchecked (429)", time.Since(start).Round(time.Millisecond), wrong, limited)
	if wrong > 5 || limited < 35 {
		t.Errorf("%d wrong proofs checked, %d refused: guessing is not slowed down", wrong, limited)
	}
	if _, _, _, err := client.Register(ctx, s.APIAddr(), "web1", pass, key); !errors.Is(err, api.ErrRateLimited) {
		t.Errorf("the right passphrase right after a burst of wrong ones: %v, want it refused until the delay passed", err)
	}
	adm := servertest.Admin(t, s, dir)
	servertest.WaitFor(t, "the registration-burst alert", func() bool {
		as, err := adm.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range as.Active {
			if al.Alert == api.AlertRegistrationBurst {
				return true
			}
		}
		return false
	})
}
