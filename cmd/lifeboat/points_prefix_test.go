package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

type listed []api.Point

func (l listed) Points(context.Context, string) ([]api.Point, error) { return l, nil }

func TestResolvePointByUniquePrefix(t *testing.T) {
	pts := listed{{ID: "3f2a9c1e-0000-4000-8000-000000000001"}, {ID: "3f2b0000-0000-4000-8000-000000000002"}, {ID: "9d00aaaa-0000-4000-8000-000000000003"}}
	ctx := context.Background()
	for in, want := range map[string]string{
		"9":                                    "9d00aaaa-0000-4000-8000-000000000003",
		"3f2a":                                 "3f2a9c1e-0000-4000-8000-000000000001",
		"3f2b0000-0000-4000-8000-000000000002": "3f2b0000-0000-4000-8000-000000000002",
		"latest":                               "latest",
		"latest-app":                           "latest-app",
	} {
		got, err := resolvePoint(ctx, pts, "m1", in)
		if err != nil || got != want {
			t.Errorf("resolvePoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := resolvePoint(ctx, pts, "m1", "3f2"); err == nil || !strings.Contains(err.Error(), "several") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if got, err := resolvePoint(ctx, pts, "m1", "3f2"); api.Hint(err) == "" || got != "" {
		t.Errorf("ambiguous prefix: %q, %v (want an error with a hint)", got, err)
	}
	if got, err := resolvePoint(ctx, pts, "m1", "ff"); err != nil || got != "ff" {
		t.Errorf("unknown prefix: %q, %v (want it passed to the server as typed)", got, err)
	}
}

func TestTableTimeIsFixedWidthToTheSecond(t *testing.T) {
	a := tableTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := tableTime(time.Date(2026, 12, 22, 13, 14, 15, 987654321, time.FixedZone("x", 3600)))
	if a != "2026-01-02T03:04:05Z" || b != "2026-12-22T12:14:15Z" || len(a) != len(b) {
		t.Fatalf("tableTime: %q, %q", a, b)
	}
}
