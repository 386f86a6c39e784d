package archtest

import (
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// rules are the dependency rules of docs/ARCHITECTURE.md §8. Patterns are
// relative to the module: "x/..." is x and everything below it. Unless a
// rule is Direct, a package breaks it through any chain of imports, as
// what it links; only the packages' own files count, not their tests.
var rules = []rule{
	{
		Name: "the wire contract, the journal format, the uploader and the clients know no role",
		From: []string{"api/...", "hrlfmt/...", "uploader/...", "client/..."},
		Deny: []string{"server/...", "agent/..."},
	},
	{
		Name: "api imports no other lifeboat package",
		From: []string{"api/..."},
		Only: []string{}, // nothing of the module but api/ itself
	},
	{
		// net/http is allowed for its status codes only: see
		// TestAPIUsesHTTPOnlyForStatusCodes.
		Name:    "api does no I/O",
		From:    []string{"api/..."},
		DenyStd: []string{"os", "os/exec", "os/signal", "io/fs", "io/ioutil", "net", "net/rpc", "net/smtp", "syscall", "path/filepath", "embed"},
		Direct:  true,
	},
	{
		Name: "uploader imports neither server nor client",
		From: []string{"uploader/..."},
		Deny: []string{"server/...", "client/..."},
	},
	{
		Name: "agentctl links neither agent, tracker nor bpf",
		From: []string{"cmd/agentctl"},
		Deny: []string{"agent/...", "tracker/...", "bpf/..."},
	},
	{
		Name: "the lifeboat CLI links neither bpf, tracker nor agent",
		From: []string{"cmd/lifeboat"},
		Deny: []string{"bpf/...", "tracker/...", "agent/..."},
	},
	{
		Name: "agent imports no server",
		From: []string{"agent/..."},
		Deny: []string{"server/..."},
	},
	{
		Name: "the group protocol knows only the wire contract",
		From: []string{"agent/group"},
		Only: []string{"api"},
	},
	{
		Name: "tracker imports no agent, server, uploader or store",
		From: []string{"tracker/..."},
		Deny: []string{"agent/...", "server/...", "uploader/...", "store/..."},
	},
	{
		Name: "the Windows tracker imports no agent, server, uploader or store",
		From: []string{"windows"},
		Deny: []string{"agent/...", "server/...", "uploader/...", "store/..."},
	},
	{
		Name: "hrlfmt imports only internal/fsutil",
		From: []string{"hrlfmt/..."},
		Only: []string{"internal/fsutil"},
	},
	{
		Name: "store imports no server or agent",
		From: []string{"store/..."},
		Deny: []string{"server/...", "agent/..."},
	},
	{
		Name: "the process role imports neither the composition nor another role",
		From: []string{"server/process"},
		Deny: []string{"server", "server/configsrv", "server/mastertarget", "server/alerts", "server/console"},
	},
	{
		Name: "the master-target role imports neither the composition nor another role",
		From: []string{"server/mastertarget"},
		Deny: []string{"server", "server/configsrv", "server/process", "server/alerts", "server/console"},
	},
	{
		Name: "the configuration role imports neither the composition nor another role",
		From: []string{"server/configsrv", "server/alerts", "server/console"},
		Deny: []string{"server", "server/process", "server/mastertarget"},
	},
	{
		Name: "the server's shared plumbing imports no role and not the composition",
		From: []string{"server/httpapi", "server/recdir", "server/statefile", "server/machines", "server/pki"},
		Deny: []string{"server", "server/configsrv", "server/process", "server/mastertarget", "server/alerts", "server/console"},
	},
}

// goosList are the builds checked: the rules hold for each.
var goosList = []string{"linux", "windows"}

type loaded struct {
	mod    module
	graphs map[string]*graph // by GOOS
}

var load = sync.OnceValues(func() (*loaded, error) {
	m, err := findModule()
	if err != nil {
		return nil, err
	}
	l := &loaded{mod: m, graphs: map[string]*graph{}}
	for _, goos := range goosList {
		g, err := loadGraph(m, goos)
		if err != nil {
			return nil, err
		}
		l.graphs[goos] = g
	}
	return l, nil
})

func mustLoad(t *testing.T) *loaded {
	t.Helper()
	l, err := load()
	if err != nil {
		t.Fatalf("read the module's import graph: %v", err)
	}
	return l
}

func TestDependencyRules(t *testing.T) {
	l := mustLoad(t)
	for _, r := range rules {
		t.Run(r.Name, func(t *testing.T) {
			// A rule about no package would pass forever: its From must
			// name at least one package of the module.
			found := false
			var lines []string
			builds := map[string][]string{} // violation → the GOOS it was found in
			for _, goos := range goosList {
				g := l.graphs[goos]
				for _, p := range g.pkgs {
					if !p.DepOnly && matches(g.rel(p.ImportPath), r.From) {
						found = true
					}
				}
				for _, v := range g.check(r) {
					s := v.String()
					if builds[s] == nil {
						lines = append(lines, s)
					}
					builds[s] = append(builds[s], goos)
				}
			}
			if !found {
				t.Errorf("rule %q: no package of the module matches %v", r.Name, r.From)
			}
			for _, s := range lines {
				t.Errorf("%s (GOOS=%s)", s, strings.Join(builds[s], ","))
			}
		})
	}
}

func TestAPIUsesHTTPOnlyForStatusCodes(t *testing.T) {
	l := mustLoad(t)
	g := l.graphs["linux"]
	fset := token.NewFileSet()
	n := 0
	for _, path := range g.sorted() {
		p := g.pkgs[path]
		if p.DepOnly || !matches(g.rel(path), []string{"api/..."}) {
			continue
		}
		for _, f := range p.GoFiles {
			n++
			uses, err := httpUses(fset, filepath.Join(p.Dir, f), nil, statusName)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range uses {
				t.Errorf("%s: api may use net/http only for status codes (http.Status…)", u)
			}
		}
	}
	if n == 0 {
		t.Fatal("no Go file found under api/")
	}
}

// statusName tells whether a name of net/http is a status code or its text.
func statusName(name string) bool { return strings.HasPrefix(name, "Status") }

// bannedNames name no concern; a package is named for what it owns.
var bannedNames = []string{"util", "utils", "common", "helpers", "helper", "misc"}

func TestPackageNames(t *testing.T) {
	l := mustLoad(t)
	for _, goos := range goosList {
		for _, p := range l.graphs[goos].badNames(bannedNames) {
			t.Errorf("package %s (GOOS=%s): name a package for what it owns, not %v", p, goos, bannedNames)
		}
	}
}

// outsideDoc is the design document that is not in the repository; code
// and docs cite docs/ARCHITECTURE.md instead.
const outsideDoc = "DESIGN.md"

func TestNoCitationOfOutsideDesign(t *testing.T) {
	l := mustLoad(t)
	root := l.mod.dir
	files, err := repoFiles(root, ".go", ".md")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), outsideDoc) {
			continue
		}
		if strings.HasSuffix(f, ".md") {
			found = append(found, mdCitations(f, src, outsideDoc)...)
			continue
		}
		c, err := citations(fset, f, src, outsideDoc)
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, c...)
	}
	for _, c := range found {
		t.Errorf("%s: cites %s, which is not in the repository: cite docs/ARCHITECTURE.md §N", c, outsideDoc)
	}
	if !slices.Contains(files, filepath.Join("internal", "archtest", "arch_test.go")) {
		t.Errorf("the walk of %s missed this file: %d files found", root, len(files))
	}
}

func TestRulesNameTheirPackages(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Name] {
			t.Errorf("two rules named %q", r.Name)
		}
		seen[r.Name] = true
		if len(r.From) == 0 {
			t.Errorf("rule %q is about no package", r.Name)
		}
		if r.Deny == nil && r.Only == nil && r.DenyStd == nil {
			t.Errorf("rule %q forbids nothing", r.Name)
		}
	}
}
