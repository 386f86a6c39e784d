package recdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
)

// Ext is the extension of a record's file.
const Ext = ".json"

// Modes of what the package writes: records may hold secrets.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// ErrNotFound is returned (wrapped in *NotFoundError) by Dir.Get for a
// record that does not exist; it matches os.ErrNotExist too.
var ErrNotFound = errors.New("no such record")

// NotFoundError says which record is missing.
type NotFoundError struct {
	Name string
}

func (e *NotFoundError) Error() string { return "no record " + e.Name }

// Is matches ErrNotFound and os.ErrNotExist.
func (e *NotFoundError) Is(target error) bool {
	return target == ErrNotFound || target == os.ErrNotExist
}

// CorruptError is a record whose file cannot be decoded.
type CorruptError struct {
	// File is the path of the damaged file.
	File string
	Err  error
}

func (e *CorruptError) Error() string { return e.File + ": " + e.Err.Error() }

func (e *CorruptError) Unwrap() error { return e.Err }

// Dir is a directory of records of type T, one <name>.json each. It holds
// no lock: callers serialize their read-modify-write sequences.
type Dir[T any] struct {
	path string
	// Valid, if set, accepts the names of records; a file whose name it
	// refuses is not a record (List skips it, Get and Put refuse it).
	Valid func(name string) error
}

// New returns the record directory at path (made on the first Put).
func New[T any](path string, valid func(string) error) *Dir[T] {
	return &Dir[T]{path: path, Valid: valid}
}

// Path returns the directory.
func (d *Dir[T]) Path() string { return d.path }

// File returns the path of the record name.
func (d *Dir[T]) File(name string) string { return filepath.Join(d.path, name+Ext) }

func (d *Dir[T]) check(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("bad record name %q", name)
	}
	if d.Valid != nil {
		if err := d.Valid(name); err != nil {
			return fmt.Errorf("bad record name %q: %w", name, err)
		}
	}
	return nil
}

// Names lists, sorted, the names of the records. A missing directory has
// none. Temporary files a crash left behind are not records.
func (d *Dir[T]) Names() ([]string, error) {
	ents, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), Ext)
		if !ok || e.IsDir() || strings.HasPrefix(e.Name(), ".") || d.check(name) != nil {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Get reads the record name: a *NotFoundError when it does not exist, a
// *CorruptError naming the file when it cannot be decoded.
func (d *Dir[T]) Get(name string) (T, error) {
	var v T
	if err := d.check(name); err != nil {
		return v, err
	}
	err := ReadFile(d.File(name), &v)
	if errors.Is(err, os.ErrNotExist) {
		return v, &NotFoundError{Name: name}
	}
	return v, err
}

// Record is a record with its name.
type Record[T any] struct {
	Name  string
	Value T
}

// List reads every record, sorted by name. It stops at the first one that
// cannot be read.
func (d *Dir[T]) List() ([]Record[T], error) {
	names, err := d.Names()
	if err != nil {
		return nil, err
	}
	out := make([]Record[T], 0, len(names))
	for _, n := range names {
		v, err := d.Get(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Record[T]{Name: n, Value: v})
	}
	return out, nil
}

// Put writes the record name crash-safely: after a crash the file holds
// either the old record or the new one.
func (d *Dir[T]) Put(name string, v T) error {
	if err := d.check(name); err != nil {
		return err
	}
	if err := os.MkdirAll(d.path, dirMode); err != nil {
		return err
	}
	return WriteFile(d.File(name), v)
}

// Exists reports whether the record name exists.
func (d *Dir[T]) Exists(name string) (bool, error) {
	if err := d.check(name); err != nil {
		return false, err
	}
	_, err := os.Stat(d.File(name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes the record name and makes the removal durable; a
// missing record is a *NotFoundError.
func (d *Dir[T]) Delete(name string) error {
	if err := d.check(name); err != nil {
		return err
	}
	err := os.Remove(d.File(name))
	if errors.Is(err, os.ErrNotExist) {
		return &NotFoundError{Name: name}
	}
	if err != nil {
		return err
	}
	return fsutil.SyncDir(d.path)
}

// RemoveTemps removes the temporary files a crash left in the directory
// (fsutil.TempPrefix). Call it only while no one writes the directory.
func (d *Dir[T]) RemoveTemps() error {
	ents, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if name, ok := strings.CutPrefix(e.Name(), "."); ok && strings.Contains(name, Ext+".tmp-") && !e.IsDir() {
			if err := os.Remove(filepath.Join(d.path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// ReadFile decodes the JSON file path into v; a file that cannot be
// decoded is a *CorruptError. A missing file is returned as is (it
// matches os.ErrNotExist).
func ReadFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &CorruptError{File: path, Err: err}
	}
	return nil
}

// WriteFile writes v as indented JSON, with a final newline, to path
// crash-safely, readable by its owner only. The directory must exist.
func WriteFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), fileMode)
}
