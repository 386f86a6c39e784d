// Package archtest is the architecture test: an ordinary Go test that fails
// when the module breaks a layout or dependency rule of
// docs/ARCHITECTURE.md §8, naming the import chain that breaks it.
//
// It reads the module's import graph with `go list -deps -json` (for the
// Linux and the Windows build) and checks it against the rules, which are a
// table in arch_test.go; it also checks that api/ uses net/http for nothing
// but status codes, that no package is named util, common or helpers, and
// that no Go comment or Markdown file cites a design document outside the
// repository (code cites docs/ARCHITECTURE.md).
//
// It owns only tests: it must never be imported, never need root or the
// network, and never change the tree it reads. A rule is changed in
// docs/ARCHITECTURE.md §8 and in the table together.
package archtest
