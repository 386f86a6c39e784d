package server_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// TestProbe: an authenticated machine's probe is read in full and
// discarded; one above the bound is refused with a hint.
func TestProbe(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	ag := servertest.Register(t, s, dir, "probe-host")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 8 << 20
	res, took, err := ag.Process.Probe(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != n || res.Seconds <= 0 || took <= 0 {
		t.Fatalf("probe of %d bytes: %+v in %s", n, res, took)
	}
	_, _, err = ag.Process.Probe(ctx, api.MaxProbeBytes+1)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge || ae.Hint() == "" {
		t.Fatalf("oversized probe: %v", err)
	}
}
