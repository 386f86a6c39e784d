// Package logging makes zerolog the output backend of the log/slog loggers
// that Lifeboat's packages use: a slog.Handler that writes each record as a
// zerolog event, JSON by default and human-readable on a terminal.
//
// It owns the choice of format and level (the --log-format and --log-level
// flags of the commands). Packages keep logging through *slog.Logger; they
// must never import zerolog or this package's handler type directly, and
// this package must never log on its own or change slog.Default.
package logging
