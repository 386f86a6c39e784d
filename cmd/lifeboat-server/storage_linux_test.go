package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline/cmdlinetest"
	"github.com/lifeboat-dr/lifeboat/internal/testenv"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
)

// TestStorageReflink runs init and the server on a data directory that
// cannot share extents (the test's ext4 or tmpfs temporary directory, and
// XFS made with reflink=0) and on XFS made with reflink=1: init warns,
// server.json and GET /v1/server say store_reflink and carry the note
// with its remedy exactly when the file system cannot share extents.
func TestStorageReflink(t *testing.T) {
	for _, c := range []struct {
		name    string
		parent  func(t *testing.T) string
		reflink bool
	}{
		{"tmp", func(t *testing.T) string { return testenv.NewNoReflinkDir(t) }, false},
		{"xfs-noreflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, false) }, false},
		{"xfs-reflink", func(t *testing.T) string { return testenv.NewXFS(t, 320<<20, true) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(c.parent(t), "data")
			var out, errOut bytes.Buffer
			m := &Main{Stdout: &out, Stderr: &errOut}
			if err := m.Run(context.Background(), []string{"init", "--data", dir}); err != nil {
				t.Fatalf("init: %v\n%s", err, errOut.String())
			}
			warned := strings.Contains(errOut.String(), "warning: "+dir+": "+statefile.NoReflinkNote)
			if warned == c.reflink {
				t.Fatalf("init on %s (reflink %v): stderr %q", c.name, c.reflink, errOut.String())
			}
			var logs cmdlinetest.Buffer
			cfg := servertest.Config(t, dir)
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil))
			s := servertest.Start(t, cfg)
			if logged := strings.Contains(logs.String(), "target storage without reflink"); logged == c.reflink {
				t.Fatalf("run on %s (reflink %v): log:\n%s", c.name, c.reflink, logs.String())
			}
			st, err := statefile.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.StoreReflink == nil || *st.StoreReflink != c.reflink || (st.StoreNote == "") != c.reflink {
				t.Fatalf("server.json: store_reflink %v, store_note %q; want %v", st.StoreReflink, st.StoreNote, c.reflink)
			}
			si, err := servertest.Admin(t, s, dir).Server(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if si.StoreReflink == nil || *si.StoreReflink != c.reflink || (si.StoreNote == "") != c.reflink ||
				!c.reflink && !strings.Contains(si.StoreNote, "reflink=1") || len(si.Roles) != 3 {
				t.Fatalf("GET /v1/server: %+v; want store_reflink %v", si, c.reflink)
			}
		})
	}
}
