package main

import (
	"io"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cli"
	"github.com/lifeboat-dr/lifeboat/internal/config"
)

// writeJSON writes v as indented JSON: the stable --json output, where
// an empty list is [], never null.
func writeJSON(w io.Writer, v any) error { return cli.WriteJSON(w, v) }

// table writes aligned columns.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// tableTime is a time in a table: UTC, to the second, always 20
// characters wide (--json keeps full precision).
func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtBytes formats a size as every command does (internal/config).
func fmtBytes(n int64) string { return config.FormatBytes(n) }
