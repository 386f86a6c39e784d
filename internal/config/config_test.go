package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

type list []string

func (l *list) String() string     { return fmt.Sprint(*l) }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type flags struct {
	fs       *flag.FlagSet
	server   *string
	interval *time.Duration
	spool    *int64
	debug    *bool
	disks    *list
	config   *string
}

func newFlags() *flags {
	f := &flags{fs: flag.NewFlagSet("run", flag.ContinueOnError), disks: &list{}}
	f.fs.SetOutput(new(strings.Builder))
	f.server = f.fs.String("server", "", "")
	f.interval = f.fs.Duration("point-interval", time.Minute, "")
	f.spool = f.fs.Int64("spool-bytes", 1<<30, "")
	f.debug = f.fs.Bool("debug", false, "")
	f.fs.Var(f.disks, "disk", "")
	f.config = f.fs.String("config", "", "")
	return f
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyPrecedence(t *testing.T) {
	const file = `server = "file:1"
point-interval = "5s"
spool-bytes = 1024
debug = true
disk = ["/dev/loop1", "/dev/loop2"]
`
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		file     string
		server   string
		interval time.Duration
		spool    int64
		debug    bool
		disks    []string
		src      map[string]Source
	}{
		{name: "defaults", server: "", interval: time.Minute, spool: 1 << 30,
			src: map[string]Source{"server": FromDefault, "disk": FromDefault}},
		{name: "file over default", file: file, server: "file:1", interval: 5 * time.Second, spool: 1024, debug: true,
			disks: []string{"/dev/loop1", "/dev/loop2"}, src: map[string]Source{"server": FromFile, "disk": FromFile, "debug": FromFile}},
		{name: "env over file", file: file,
			env:    map[string]string{"LIFEBOAT_AGENT_SERVER": "env:2", "LIFEBOAT_AGENT_DISK": "/dev/a, /dev/b", "LIFEBOAT_AGENT_POINT_INTERVAL": "2s"},
			server: "env:2", interval: 2 * time.Second, spool: 1024, debug: true, disks: []string{"/dev/a", "/dev/b"},
			src: map[string]Source{"server": FromEnv, "disk": FromEnv, "point-interval": FromEnv, "spool-bytes": FromFile}},
		{name: "flag over env and file", file: file, args: []string{"--server", "flag:3", "--disk", "/dev/x", "--debug=false"},
			env:    map[string]string{"LIFEBOAT_AGENT_SERVER": "env:2", "LIFEBOAT_AGENT_DISK": "/dev/a"},
			server: "flag:3", interval: 5 * time.Second, spool: 1024, debug: false, disks: []string{"/dev/x"},
			src: map[string]Source{"server": FromFlag, "disk": FromFlag, "debug": FromFlag}},
		{name: "empty variable is unset", file: file, env: map[string]string{"LIFEBOAT_AGENT_SERVER": ""},
			server: "file:1", interval: 5 * time.Second, spool: 1024, debug: true, disks: []string{"/dev/loop1", "/dev/loop2"},
			src: map[string]Source{"server": FromFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags()
			if err := f.fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			o := Options{EnvPrefix: "LIFEBOAT_AGENT_", Getenv: func(k string) string { return tc.env[k] }, Skip: []string{"config"}}
			if tc.file != "" {
				o.File = write(t, tc.file)
			}
			src, err := Apply(f.fs, o)
			if err != nil {
				t.Fatal(err)
			}
			if *f.server != tc.server || *f.interval != tc.interval || *f.spool != tc.spool || *f.debug != tc.debug {
				t.Errorf("got server=%q interval=%v spool=%d debug=%v, want %q %v %d %v",
					*f.server, *f.interval, *f.spool, *f.debug, tc.server, tc.interval, tc.spool, tc.debug)
			}
			if got := []string(*f.disks); !reflect.DeepEqual(got, tc.disks) && !(len(got) == 0 && len(tc.disks) == 0) {
				t.Errorf("disks %q, want %q", got, tc.disks)
			}
			for k, want := range tc.src {
				if src[k] != want {
					t.Errorf("source of %s: %s, want %s", k, src[k], want)
				}
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string // substrings of the error
		is   error
	}{
		{name: "unknown key", file: "server = \"a\"\npoint-intervall = \"1s\"\n", want: []string{"point-intervall", "agent.toml", "unknown key", "known keys: debug, disk, point-interval, server, spool-bytes"}, is: ErrUnknownKey},
		{name: "skipped key is unknown", file: "config = \"/etc/x\"\n", want: []string{"config", "unknown key"}, is: ErrUnknownKey},
		{name: "bad duration", file: "point-interval = \"soon\"\n", want: []string{"agent.toml", "point-interval", `"soon"`}},
		{name: "array for a single flag", file: "server = [\"a\", \"b\"]\n", want: []string{"server", "not an array"}},
		{name: "table", file: "[server]\nx = 1\n", want: []string{"server", "unsupported value"}},
		{name: "not toml", file: "server: a\n", want: []string{"agent.toml", "TOML"}},
		{name: "bad env", env: map[string]string{"LIFEBOAT_AGENT_SPOOL_BYTES": "lots"}, want: []string{"LIFEBOAT_AGENT_SPOOL_BYTES", `"lots"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags()
			if err := f.fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			o := Options{EnvPrefix: "LIFEBOAT_AGENT_", Getenv: func(k string) string { return tc.env[k] }, Skip: []string{"config"}}
			if tc.file != "" {
				o.File = write(t, tc.file)
			}
			_, err := Apply(f.fs, o)
			if err == nil {
				t.Fatal("no error")
			}
			said := err.Error() + " (" + api.Hint(err) + ")"
			for _, w := range tc.want {
				if !strings.Contains(said, w) {
					t.Errorf("error and hint %q do not say %q", said, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if *f.server != "" && tc.name == "unknown key" {
				t.Errorf("a file with an unknown key set server to %q", *f.server)
			}
		})
	}
}

func TestApplyMissingFile(t *testing.T) {
	f := newFlags()
	f.fs.Parse(nil)
	_, err := Apply(f.fs, Options{File: filepath.Join(t.TempDir(), "nope.toml")})
	if err == nil || !strings.Contains(err.Error(), "nope.toml") || api.Hint(err) == "" {
		t.Fatalf("missing file: %v (hint %q)", err, api.Hint(err))
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"point-interval": "LIFEBOAT_SERVER_POINT_INTERVAL", "data": "LIFEBOAT_SERVER_DATA", "max-segment-bytes": "LIFEBOAT_SERVER_MAX_SEGMENT_BYTES"} {
		if got := EnvName("LIFEBOAT_SERVER_", in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}
