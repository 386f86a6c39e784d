package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Source tells where a flag's value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "environment"
	FromFlag    Source = "flag"
)

// Options says where to look.
type Options struct {
	// File is the TOML file; empty: none.
	File string
	// EnvPrefix is put before the upper-cased flag name, e.g.
	// "LIFEBOAT_AGENT_". Empty: the environment is not read.
	EnvPrefix string
	// Getenv reads the environment (os.Getenv if nil).
	Getenv func(string) string
	// Skip names flags that have no key and no variable (such as
	// "config" itself).
	Skip []string
}

// Error is a bad configuration, with what to do about it.
type Error struct {
	File   string // the file, or "" for the environment
	Key    string
	Err    error
	Remedy string
}

func (e *Error) Error() string {
	where := "environment"
	if e.File != "" {
		where = e.File
	}
	msg := where
	if e.Key != "" {
		msg += ": " + e.Key
	}
	msg += ": " + e.Err.Error()
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// ErrUnknownKey is wrapped by the error for a key that is not a flag.
var ErrUnknownKey = errors.New("unknown key")

// EnvName returns the environment variable of a flag.
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag of fs (already parsed) that the command line did
// not set from the environment, else from the file. It returns where each
// flag's value came from.
func Apply(fs *flag.FlagSet, o Options) (map[string]Source, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	skip := map[string]bool{}
	for _, s := range o.Skip {
		skip[s] = true
	}
	src := map[string]Source{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = FromDefault })
	fs.Visit(func(f *flag.Flag) { src[f.Name] = FromFlag })

	var file map[string]any
	if o.File != "" {
		var err error
		if file, err = readFile(o.File); err != nil {
			return nil, err
		}
		for _, k := range sortedKeys(file) {
			if fs.Lookup(k) == nil || skip[k] {
				return nil, &Error{File: o.File, Key: k, Err: ErrUnknownKey,
					Remedy: "keys are the flags of the command without dashes; known keys: " + strings.Join(knownKeys(fs, skip), ", ")}
			}
		}
	}

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if skip[f.Name] || src[f.Name] == FromFlag {
			return
		}
		if o.EnvPrefix != "" {
			name := EnvName(o.EnvPrefix, f.Name)
			if v, ok := lookup(getenv, name); ok {
				vals := []string{v}
				if isList(f) {
					vals = splitList(v)
				}
				if err := setAll(f, vals); err != nil {
					errs = append(errs, &Error{Key: name, Err: err, Remedy: "the variable takes what --" + f.Name + " takes"})
					return
				}
				src[f.Name] = FromEnv
				return
			}
		}
		v, ok := file[f.Name]
		if !ok {
			return
		}
		vals, err := fileValues(f, v)
		if err == nil {
			err = setAll(f, vals)
		}
		if err != nil {
			errs = append(errs, &Error{File: o.File, Key: f.Name, Err: err, Remedy: "the key takes what --" + f.Name + " takes"})
			return
		}
		src[f.Name] = FromFile
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return src, nil
}

func readFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: path, Err: errors.New("no such file"), Remedy: "give an existing file with --config, or none"}
		}
		return nil, &Error{File: path, Err: err}
	}
	m := map[string]any{}
	if _, err := toml.Decode(string(b), &m); err != nil {
		return nil, &Error{File: path, Err: err, Remedy: "the file is TOML: key = value, strings in double quotes"}
	}
	return m, nil
}

// lookup returns a variable that is set and not empty.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// listFlag is a repeatable flag: each Set adds a value. Flags say so with
// an IsList method, or by being a flag whose String is a Go slice ("[]").
type listFlag interface{ IsList() bool }

func isList(f *flag.Flag) bool {
	if l, ok := f.Value.(listFlag); ok {
		return l.IsList()
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().([]string); ok {
			return true
		}
	}
	return strings.HasPrefix(f.DefValue, "[") && strings.HasSuffix(f.DefValue, "]")
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// fileValues turns a TOML value into what the flag's Set takes.
func fileValues(f *flag.Flag, v any) ([]string, error) {
	if arr, ok := v.([]any); ok {
		if !isList(f) {
			return nil, errors.New("takes one value, not an array")
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	default:
		return "", fmt.Errorf("unsupported value of type %T (use a string, number, boolean or array)", v)
	}
}

func setAll(f *flag.Flag, vals []string) error {
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return fmt.Errorf("invalid value %q: %w", v, err)
		}
	}
	return nil
}

func knownKeys(fs *flag.FlagSet, skip map[string]bool) []string {
	var keys []string
	fs.VisitAll(func(f *flag.Flag) {
		if !skip[f.Name] {
			keys = append(keys, f.Name)
		}
	})
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
