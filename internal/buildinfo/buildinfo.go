package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the version of the build. The Makefile and
// scripts/package.sh set it from `git describe`:
//
//	go build -ldflags "-X github.com/lifeboat-dr/lifeboat/internal/buildinfo.Version=1.2.3"
//
// A plain `go build` leaves it empty, and Info then says "devel".
var Version string

// Info is what a binary knows of its build.
type Info struct {
	Version   string // from -ldflags -X, else "devel"
	Revision  string // the commit (vcs.revision), "" if unknown
	Modified  bool   // the work tree had changes (vcs.modified)
	GoVersion string
}

// Get returns the build's information.
func Get() Info {
	i := Info{Version: Version, GoVersion: runtime.Version()}
	if i.Version == "" {
		i.Version = "devel"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	return i
}

// String is the line `--version` prints after the program's name:
// "1.2.3 (commit 0123abcd, go1.25.1, linux/amd64)".
func (i Info) String() string {
	var extra []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if i.Modified {
			rev += "+dirty"
		}
		extra = append(extra, "commit "+rev)
	}
	extra = append(extra, i.GoVersion, runtime.GOOS+"/"+runtime.GOARCH)
	return i.Version + " (" + strings.Join(extra, ", ") + ")"
}

// IsVersionArg says whether args asks for the version: its first
// argument is --version, -version or version.
func IsVersionArg(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		return true
	}
	return false
}

// Print writes "PROG VERSION (…)" and a newline to w.
func Print(w io.Writer, prog string) {
	fmt.Fprintln(w, prog, Get())
}

// Collector returns the lifeboat_build_info gauge of program: always 1,
// with the version, revision and Go version as labels, so that a query
// can join any metric of the binary with the build that produced it.
func Collector(program string) prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lifeboat_build_info",
		Help: "Always 1; the labels say which build of which Lifeboat program this is.",
		ConstLabels: prometheus.Labels{
			"program":   program,
			"version":   i.Version,
			"revision":  i.Revision,
			"goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
