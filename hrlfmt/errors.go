package hrlfmt

import (
	"errors"
	"fmt"
)

// Sentinel errors. A *FormatError wraps exactly one of ErrTorn, ErrCorrupt
// and ErrVersion; test for them with errors.Is.
var (
	// ErrTorn: the segment ends inside a record, or after its last record
	// without a trailer, or its last record is bad and only zero bytes (or
	// nothing) follow it. Everything before FormatError.Offset is valid;
	// this is what a crash while appending leaves, and Recover repairs it.
	ErrTorn = errors.New("torn segment")
	// ErrCorrupt: a checksum or a structural check failed at
	// FormatError.Offset, and the segment goes on after the bad record, or
	// the record passed its checksum but breaks a rule of the format.
	ErrCorrupt = errors.New("corrupt segment")
	// ErrVersion: the segment has a major version this package does not
	// know, or a record of an unknown type that is not marked skippable.
	ErrVersion = errors.New("unsupported format version")
	// ErrClosed is returned by a writer used after Close.
	ErrClosed = errors.New("writer closed")
)

// FormatError reports a segment that does not follow the format: where, and
// which of ErrTorn, ErrCorrupt and ErrVersion it is (wrapped in Err).
type FormatError struct {
	// File is the segment's path, or "" for a segment read from an
	// io.Reader.
	File string
	// Offset is the byte offset in the segment of the record at fault:
	// everything before it is valid.
	Offset int64
	// Err wraps ErrTorn, ErrCorrupt or ErrVersion with details.
	Err error
}

// Error returns "file: offset N: reason".
func (e *FormatError) Error() string {
	file := e.File
	if file == "" {
		file = "hrl segment"
	}
	return fmt.Sprintf("%s: offset %d: %v", file, e.Offset, e.Err)
}

// Unwrap returns Err.
func (e *FormatError) Unwrap() error { return e.Err }
