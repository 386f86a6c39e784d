package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/spf13/pflag"
)

// Parse parses args into fs as GNU tools do (--flag, --flag=value,
// --flag value, -- ends the flags), stopping at the first positional
// argument as fs.Parse does; fs.Args, fs.NArg and fs.Visit then work as
// after fs.Parse, so internal/config.Apply sees the flags given. A long
// flag written with one dash (-disk) still works, with a deprecation
// notice on fs.Output(). --help (-h) prints fs.Usage and returns a
// *HelpError; a bad flag or value returns a *UsageError.
func Parse(fs *flag.FlagSet, args []string) error {
	return parse(fs, args, false)
}

// ParseInterspersed is Parse with flags allowed before, between and after
// the positional arguments, which it returns.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parse(fs, args, true); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// PrintDefaults prints the flags of fs to fs.Output() as pflag does
// ("      --disk value   block device..."), in place of fs.PrintDefaults.
func PrintDefaults(fs *flag.FlagSet) {
	pfs, _ := shadow(fs)
	fmt.Fprint(fs.Output(), pfs.FlagUsages())
}

// setting is one flag given on the command line, in order.
type setting struct{ name, value string }

// recorder stands for a Go flag in the pflag set: it records the values
// pflag parses, which are then set on the Go flag set in order (so a
// repeatable flag sees every value once and fs.Visit knows what was set).
type recorder struct {
	name, typ, def string
	sets           *[]setting
}

func (r *recorder) String() string { return r.def }
func (r *recorder) Type() string   { return r.typ }
func (r *recorder) Set(v string) error {
	*r.sets = append(*r.sets, setting{r.name, v})
	return nil
}

// boolRecorder is a recorder of a boolean flag (--json, --json=false).
type boolRecorder struct{ recorder }

func (*boolRecorder) IsBoolFlag() bool { return true }

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// isZeroDefault says whether f's default is its type's zero value, as the
// flag package decides it (then the help shows no default).
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "[]", "0s", "<nil>":
		return true
	}
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	s, ok := z.Interface().(flag.Value)
	if !ok {
		return false
	}
	defer func() { _ = recover() }() // a zero value whose String panics: not zero
	return f.DefValue == s.String()
}

// shadow builds the pflag set standing for fs, and the list its values are
// recorded in.
func shadow(fs *flag.FlagSet) (*pflag.FlagSet, *[]setting) {
	sets := &[]setting{}
	pfs := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	pfs.SetOutput(io.Discard)
	pfs.Usage = func() {}
	pfs.SortFlags = false
	fs.VisitAll(func(f *flag.Flag) {
		typ, _ := flag.UnquoteUsage(f)
		r := recorder{name: f.Name, typ: typ, def: f.DefValue, sets: sets}
		var v pflag.Value = &r
		if isBool(f) {
			r.typ = "bool"
			v = &boolRecorder{r}
		} else if typ == "" {
			r.typ = "value"
		}
		short := ""
		if len(f.Name) == 1 {
			short = f.Name
		}
		pf := pfs.VarPF(v, f.Name, short, f.Usage)
		if isBool(f) {
			pf.NoOptDefVal = "true"
		}
		pf.DefValue = f.DefValue
		if isZeroDefault(f) {
			pf.DefValue = ""
			if isBool(f) {
				pf.DefValue = "false"
			}
		}
	})
	if fs.Lookup("help") == nil {
		short := "h"
		if fs.Lookup("h") != nil {
			short = ""
		}
		pfs.BoolP("help", short, false, "help for "+fs.Name())
	}
	return pfs, sets
}

func parse(fs *flag.FlagSet, args []string, interspersed bool) error {
	args = Normalize(fs, args, interspersed, fs.Output())
	pfs, sets := shadow(fs)
	pfs.SetInterspersed(interspersed)
	if err := pfs.Parse(args); err != nil {
		return &UsageError{Err: err, Command: fs.Name()}
	}
	if h := pfs.Lookup("help"); h != nil && h.Changed && fs.Lookup("help") == nil {
		if fs.Usage != nil && !isDefaultUsage(fs) {
			fs.Usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			PrintDefaults(fs)
		}
		return &HelpError{FlagSet: fs}
	}
	for _, s := range *sets {
		if err := fs.Set(s.name, s.value); err != nil {
			return &UsageError{Err: fmt.Errorf("invalid value %q for --%s: %w", s.value, s.name, err), Command: fs.Name()}
		}
	}
	// Hand the positional arguments to fs (after "--", so none is taken
	// for a flag): fs.Args and fs.NArg work, fs.Visit still knows the flags.
	if err := fs.Parse(append([]string{"--"}, pfs.Args()...)); err != nil {
		return &UsageError{Err: err, Command: fs.Name()}
	}
	return nil
}

// defaultUsage is the code of the Usage flag.NewFlagSet installs.
var defaultUsage = reflect.ValueOf(flag.NewFlagSet("", flag.ContinueOnError).Usage).Pointer()

// isDefaultUsage says whether fs prints the flag package's own usage,
// which lists the flags with one dash: then Parse prints its own.
func isDefaultUsage(fs *flag.FlagSet) bool {
	return reflect.ValueOf(fs.Usage).Pointer() == defaultUsage
}

// Normalize rewrites the long flags of fs written with one dash (-disk,
// -disk=x), which Go's flag package took and pflag would read as -d -i -s
// -k, into their two-dash form, and prints a deprecation notice for each
// on w. It stops at "--", and at the first positional argument unless
// interspersed.
func Normalize(fs *flag.FlagSet, args []string, interspersed bool, w io.Writer) []string {
	out := append([]string(nil), args...)
	takesValue := func(name string) bool {
		f := fs.Lookup(name)
		return f != nil && !isBool(f)
	}
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			if !interspersed {
				break
			}
			continue
		}
		if strings.HasPrefix(a, "--") {
			name, _, hasValue := strings.Cut(a[2:], "=")
			if !hasValue && takesValue(name) {
				i++
			}
			continue
		}
		name, _, hasValue := strings.Cut(a[1:], "=")
		if len(name) > 1 && (fs.Lookup(name) != nil || name == "help") {
			out[i] = "-" + a
			if w != nil {
				fmt.Fprintf(w, "warning: -%s is deprecated, write --%s (single-dash long flags will stop working in a later release)\n", name, name)
			}
		}
		if !hasValue && takesValue(name) {
			i++
		}
	}
	return out
}

// HelpError is returned when --help was asked for; the usage has been
// printed. It matches flag.ErrHelp.
type HelpError struct {
	// FlagSet is the flag set whose usage was printed.
	FlagSet *flag.FlagSet
}

func (e *HelpError) Error() string { return "help requested" }
func (e *HelpError) Unwrap() error { return flag.ErrHelp }

// UsageError is a command line the program cannot run: an unknown command
// or flag, a bad value, a missing or extra argument. Every program exits
// with status 2 for it.
type UsageError struct {
	Err error
	// Command is the command whose usage was broken ("run", "group
	// create"), or "" for the program's own.
	Command string
	// Remedy, if set, replaces the default hint (the command's --help).
	Remedy string
	// program is filled in by Program.Execute for the hint.
	program string
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Hint tells the operator where the usage is.
func (e *UsageError) Hint() string {
	if e.Remedy != "" {
		return e.Remedy
	}
	cmd := strings.TrimSpace(e.program + " " + e.Command)
	if e.program != "" && e.Command == e.program {
		cmd = e.program
	}
	if cmd == "" {
		return "see --help"
	}
	return "run '" + cmd + " --help' for the usage"
}

// Usagef returns a *UsageError of command with a formatted message.
func Usagef(command, format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...), Command: command}
}

// IsUsage says whether err is a usage error (exit status 2).
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// IsHelp says whether err says help was printed (exit status 0).
func IsHelp(err error) bool {
	var h *HelpError
	return errors.As(err, &h)
}

// SetUsage makes fs's usage "Usage: SYNOPSIS" and its flags, --flag style.
func SetUsage(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: "+synopsis)
		PrintDefaults(fs)
	}
}
