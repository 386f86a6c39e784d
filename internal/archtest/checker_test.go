package archtest

import (
	"go/token"
	"slices"
	"testing"
)

// fakeGraph builds a graph of module "m" from "path: imports" pairs; paths
// without a dot or "m/" are standard.
func fakeGraph(edges map[string][]string) *graph {
	g := &graph{mod: "m", pkgs: map[string]*pkg{}}
	add := func(path string) *pkg {
		if p, ok := g.pkgs[path]; ok {
			return p
		}
		p := &pkg{ImportPath: path, Standard: g.rel(path) == ""}
		g.pkgs[path] = p
		return p
	}
	for from, imps := range edges {
		p := add(from)
		p.Imports = append(p.Imports, imps...)
		for _, imp := range imps {
			add(imp)
		}
	}
	return g
}

// The machinery must fail on a broken rule: these are synthetic violations.
func TestCheckerFindsViolations(t *testing.T) {
	g := fakeGraph(map[string][]string{
		"m/api":             {"fmt", "m/x"},
		"m/x":               {"m/server/role"},
		"m/server/role":     {"os", "m/store"},
		"m/hrlfmt":          {"m/internal/fsutil", "m/store", "io"},
		"m/hrlfmt/sub":      {"m/hrlfmt"},
		"m/internal/fsutil": {"os"},
		"m/store":           {"m/internal/fsutil"},
		"m/clean":           {"m/store"},
		"fmt":               {"os", "io"},
	})
	for _, tc := range []struct {
		r    rule
		want []string
	}{{
		r:    rule{Name: "deny", From: []string{"api/..."}, Deny: []string{"server/..."}},
		want: []string{"deny: api → x → server/role"},
	}, {
		// The walk goes on past a forbidden package, so what it links is
		// reported too.
		r:    rule{Name: "deny-all", From: []string{"api"}, Deny: []string{"x", "store"}},
		want: []string{"deny-all: api → x", "deny-all: api → x → server/role → store"},
	}, {
		r:    rule{Name: "only", From: []string{"hrlfmt/..."}, Only: []string{"internal/fsutil"}},
		want: []string{"only: hrlfmt → store", "only: hrlfmt/sub → hrlfmt → store"},
	}, {
		r:    rule{Name: "none", From: []string{"api"}, Only: []string{}},
		want: []string{"none: api → x", "none: api → x → server/role", "none: api → x → server/role → store", "none: api → x → server/role → store → internal/fsutil"},
	}, {
		// Direct: os through fmt or through another package of the module
		// does not count; os imported by the package itself does.
		r:    rule{Name: "std", From: []string{"api", "server/..."}, DenyStd: []string{"os"}, Direct: true},
		want: []string{"std: server/role → os"},
	}, {
		r:    rule{Name: "std-chain", From: []string{"api"}, DenyStd: []string{"os"}},
		want: []string{"std-chain: api → x → server/role → os"},
	}, {
		r: rule{Name: "clean", From: []string{"clean", "store"}, Deny: []string{"server/...", "api/..."}},
	}} {
		got := fmtChains(g.check(tc.r))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("rule %s:\n got  %q\n want %q", tc.r.Name, got, tc.want)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		rel      string
		patterns []string
		want     bool
	}{
		{"api", []string{"api/..."}, true},
		{"api/x", []string{"api/..."}, true},
		{"apix", []string{"api/..."}, false},
		{"cmd/agentctl", []string{"cmd/agentctl"}, true},
		{"cmd/agentctl/x", []string{"cmd/agentctl"}, false},
		{"anything", []string{"..."}, true},
		{"", []string{"..."}, false},
		{"api", nil, false},
	} {
		if got := matches(tc.rel, tc.patterns); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.rel, tc.patterns, got, tc.want)
		}
	}
}

func TestBadNames(t *testing.T) {
	g := fakeGraph(map[string][]string{"m/a/util": nil, "m/common/x": nil, "m/utility": nil, "fmt": nil})
	got := g.badNames(bannedNames)
	slices.Sort(got)
	if want := []string{"a/util", "common/x"}; !slices.Equal(got, want) {
		t.Errorf("badNames = %q, want %q", got, want)
	}
}

func TestHTTPUses(t *testing.T) {
	src := `package api

import h "net/http"

var ok = h.StatusConflict
var text = h.StatusText(409)

func get() { h.Get("http://x") }
`
	got, err := httpUses(token.NewFileSet(), "a.go", src, statusName)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.go:8:14: http.Get"}; !slices.Equal(got, want) {
		t.Errorf("httpUses = %q, want %q", got, want)
	}
	got, err = httpUses(token.NewFileSet(), "b.go", "package api\n\nimport \"fmt\"\n\nvar _ = fmt.Sprint\n", statusName)
	if err != nil || got != nil {
		t.Errorf("httpUses without net/http = %q, %v", got, err)
	}
}

func TestCitations(t *testing.T) {
	src := "package x\n\n// See " + outsideDoc + " §4.\nvar s = \"" + outsideDoc + "\" /* " + outsideDoc + " */\n"
	got, err := citations(token.NewFileSet(), "x.go", src, outsideDoc)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x.go:3:1", "x.go:4:21"}; !slices.Equal(got, want) {
		t.Errorf("citations = %q, want %q", got, want)
	}
	md := []byte("# T\n\nsee " + outsideDoc + "\nsee docs/ARCHITECTURE.md\n")
	if got, want := mdCitations("a.md", md, outsideDoc), []string{"a.md:3"}; !slices.Equal(got, want) {
		t.Errorf("mdCitations = %q, want %q", got, want)
	}
}

// fmtChains returns the violations as strings.
func fmtChains(vs []violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}
