package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cli"
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

// fmtBytes formats a size in binary units.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
