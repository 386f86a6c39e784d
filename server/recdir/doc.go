// Package recdir owns the directory of JSON records the server keeps for
// each kind of thing it is told about (machines/, groups/, plans/,
// servers/): one file <name>.json per record, typed by the caller, written
// crash-safely (a temporary file, fsync, rename, fsync of the directory:
// internal/fsutil.WriteFileAtomic), and the single JSON file of a list
// (tokens.json, assignments.json) written the same way. The data
// directory's layout is docs/server.md's; the state formats are
// docs/ARCHITECTURE.md §5.
//
// What it must never do:
//   - leave a half-written record under its name, or read a temporary
//     file left by a crash as a record;
//   - report a damaged record without the name of its file;
//   - take a name that is not valid (Dir.Valid) as a path element.
package recdir
