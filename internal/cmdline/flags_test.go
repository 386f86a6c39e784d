package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/config"
)

type list []string

func (l *list) String() string     { return fmt.Sprint(*l) }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type flags struct {
	fs       *flag.FlagSet
	out      *strings.Builder
	server   *string
	interval *time.Duration
	json     *bool
	disks    list
}

func newFlags() *flags {
	f := &flags{fs: flag.NewFlagSet("run", flag.ContinueOnError), out: new(strings.Builder)}
	f.fs.SetOutput(f.out)
	f.server = f.fs.String("server", "", "configuration server `HOST:PORT`")
	f.interval = f.fs.Duration("point-interval", time.Minute, "point interval")
	f.json = f.fs.Bool("json", false, "print JSON")
	f.fs.Var(&f.disks, "disk", "block device; repeat for several")
	return f
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name     string
		args     []string
		server   string
		interval time.Duration
		json     bool
		disks    list
		rest     []string
		notices  []string
	}{
		{name: "gnu", args: []string{"--server", "h:1", "--point-interval=5s", "--json", "--disk", "/dev/a", "--disk=/dev/b", "x"},
			server: "h:1", interval: 5 * time.Second, json: true, disks: list{"/dev/a", "/dev/b"}, rest: []string{"x"}},
		{name: "single-dash long flags of old scripts", args: []string{"-server", "h:1", "-point-interval=5s", "-json", "-disk", "/dev/a"},
			server: "h:1", interval: 5 * time.Second, json: true, disks: list{"/dev/a"}, rest: []string{},
			notices: []string{"-server is deprecated, write --server", "-point-interval is deprecated", "-json is deprecated", "-disk is deprecated"}},
		{name: "a value that looks like a flag is a value", args: []string{"--server", "-json"},
			server: "-json", interval: time.Minute, rest: []string{}},
		{name: "stops at the first positional argument", args: []string{"cmd", "--json"},
			interval: time.Minute, rest: []string{"cmd", "--json"}},
		{name: "-- ends the flags", args: []string{"--json", "--", "-disk", "x"},
			interval: time.Minute, json: true, rest: []string{"-disk", "x"}},
		{name: "a negative duration is a value", args: []string{"--point-interval", "-5s", "-point-interval", "-6s"},
			interval: -6 * time.Second, rest: []string{}, notices: []string{"-point-interval is deprecated"}},
		{name: "bool with a value", args: []string{"--json=false"}, interval: time.Minute, rest: []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFlags()
			if err := Parse(f.fs, c.args); err != nil {
				t.Fatal(err)
			}
			if *f.server != c.server || *f.interval != c.interval || *f.json != c.json || !reflect.DeepEqual(f.disks, c.disks) {
				t.Errorf("got server %q interval %v json %v disks %q", *f.server, *f.interval, *f.json, f.disks)
			}
			if rest := f.fs.Args(); !reflect.DeepEqual(rest, c.rest) {
				t.Errorf("positional %q, want %q", rest, c.rest)
			}
			for _, n := range c.notices {
				if !strings.Contains(f.out.String(), n) {
					t.Errorf("no notice %q in %q", n, f.out.String())
				}
			}
			if len(c.notices) == 0 && f.out.Len() > 0 {
				t.Errorf("unexpected output %q", f.out.String())
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	f := newFlags()
	pos, err := ParseInterspersed(f.fs, []string{"a", "--json", "b", "-server", "h:1", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pos, []string{"a", "b", "c"}) || !*f.json || *f.server != "h:1" {
		t.Errorf("positional %q json %v server %q", pos, *f.json, *f.server)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--server"}, "flag needs an argument: --server"},
		{[]string{"--point-interval", "soon"}, `invalid value "soon" for --point-interval`},
		{[]string{"-xyz"}, "unknown shorthand flag"},
	} {
		f := newFlags()
		err := Parse(f.fs, c.args)
		var u *UsageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) || u.Command != "run" {
			t.Errorf("%q: got %v, want a usage error of run with %q", c.args, err, c.want)
		}
		u.program = "lifeboat-agent"
		if h := u.Hint(); h != "run 'lifeboat-agent run --help' for the usage" {
			t.Errorf("hint %q", h)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		f := newFlags()
		err := Parse(f.fs, []string{arg})
		if !IsHelp(err) || !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: %v, want a help error", arg, err)
		}
		out := f.out.String()
		for _, w := range []string{"--server HOST:PORT", "--point-interval duration", "(default 1m0s)", "--disk value", "--json ", "-h, --help"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: help lacks %q:\n%s", arg, w, out)
			}
		}
		if strings.Contains(out, "\n  -server") || strings.Contains(out, "(default false)") {
			t.Errorf("%s: help in the flag package's style:\n%s", arg, out)
		}
	}
}

// TestConfigApply: after Parse, internal/config sees which flags the
// command line gave (they win over the environment and the file) and
// fills in the others.
func TestConfigApply(t *testing.T) {
	f := newFlags()
	if err := Parse(f.fs, []string{"--server", "cli:1", "--disk", "/dev/a"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"X_SERVER": "env:1", "X_POINT_INTERVAL": "7s", "X_DISK": "/dev/env"}
	src, err := config.Apply(f.fs, config.Options{EnvPrefix: "X_", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if *f.server != "cli:1" || *f.interval != 7*time.Second || !reflect.DeepEqual(f.disks, list{"/dev/a"}) {
		t.Errorf("server %q interval %v disks %q", *f.server, *f.interval, f.disks)
	}
	if src["server"] != config.FromFlag || src["disk"] != config.FromFlag || src["point-interval"] != config.FromEnv || src["json"] != config.FromDefault {
		t.Errorf("sources %v", src)
	}
}
