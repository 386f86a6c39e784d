package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// pkg is one package of the import graph, as `go list -json` gives it.
type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Imports    []string
	Standard   bool
	DepOnly    bool
	Module     *struct{ Path string }
}

// graph is the import graph of one build (one GOOS) of the module.
type graph struct {
	mod  string // the module path
	pkgs map[string]*pkg
}

// module is the module under test: its path and its root directory.
type module struct {
	path, dir string
}

// findModule asks the go command which module the test runs in.
func findModule() (module, error) {
	out, err := goCmd("", nil, "list", "-m", "-f", "{{.Path}}\t{{.Dir}}")
	if err != nil {
		return module{}, err
	}
	path, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if !ok || path == "" || dir == "" {
		return module{}, fmt.Errorf("go list -m: unexpected answer %q", out)
	}
	return module{path: path, dir: dir}, nil
}

// loadGraph lists every package of the module and everything they link,
// for the build of goos (CGO_ENABLED=0, as the binaries are built).
func loadGraph(m module, goos string) (*graph, error) {
	out, err := goCmd(m.dir, []string{"GOOS=" + goos, "CGO_ENABLED=0"}, "list", "-e", "-deps", "-json", "./...")
	if err != nil {
		return nil, err
	}
	g := &graph{mod: m.path, pkgs: map[string]*pkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
	}
	if len(g.pkgs) == 0 {
		return nil, fmt.Errorf("go list (GOOS=%s) listed no package", goos)
	}
	return g, nil
}

func goCmd(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// rel returns a package path relative to the module ("api", "cmd/agentctl"),
// or "" for a package outside it.
func (g *graph) rel(path string) string {
	if path == g.mod {
		return "."
	}
	if r, ok := strings.CutPrefix(path, g.mod+"/"); ok {
		return r
	}
	return ""
}

// matches tells whether the module-relative path rel matches one of the
// patterns: "x/..." matches x and every package below it, "..." every
// package of the module, anything else itself only.
func matches(rel string, patterns []string) bool {
	if rel == "" {
		return false
	}
	for _, p := range patterns {
		if p == "..." {
			return true
		}
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if rel == base || strings.HasPrefix(rel, base+"/") {
				return true
			}
		} else if rel == p {
			return true
		}
	}
	return false
}

// rule is one dependency rule of docs/ARCHITECTURE.md §8.
type rule struct {
	Name string
	// From are the module's packages the rule is about (patterns, see
	// matches).
	From []string
	// Deny are the module's packages they must not import (patterns).
	Deny []string
	// Only, when set, are the only packages of the module they may import
	// besides those matching From.
	Only []string
	// DenyStd are standard-library packages they must not import.
	DenyStd []string
	// Direct: only their own imports count; otherwise everything they
	// link, through any chain.
	Direct bool
}

// violation is a broken rule: the chain of imports from a package the rule
// is about to the package it must not import.
type violation struct {
	Rule  string
	Chain []string // module-relative for the module's packages
}

func (v violation) String() string {
	return v.Rule + ": " + strings.Join(v.Chain, " → ")
}

// forbidden tells whether the rule forbids the package p (reached from a
// package the rule is about).
func (g *graph) forbidden(r rule, p *pkg) bool {
	if p.Standard {
		return slices.Contains(r.DenyStd, p.ImportPath)
	}
	rel := g.rel(p.ImportPath)
	if rel == "" {
		return false
	}
	if matches(rel, r.Deny) {
		return true
	}
	return r.Only != nil && !matches(rel, r.From) && !matches(rel, r.Only)
}

// check returns every violation of r in g: for each package of the module
// the rule is about and each forbidden package it reaches, the shortest
// import chain to it.
func (g *graph) check(r rule) []violation {
	var out []violation
	for _, from := range g.sorted() {
		p := g.pkgs[from]
		if p.DepOnly || !matches(g.rel(from), r.From) {
			continue
		}
		// Breadth first, so that the chain reported is a shortest one.
		parent := map[string]string{from: ""}
		queue := []string{from}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, imp := range g.pkgs[cur].Imports {
				if _, seen := parent[imp]; seen {
					continue
				}
				ip, ok := g.pkgs[imp]
				if !ok {
					continue
				}
				parent[imp] = cur
				if g.forbidden(r, ip) {
					out = append(out, violation{Rule: r.Name, Chain: g.chain(parent, imp)})
				}
				if !r.Direct && g.rel(imp) != "" {
					// Standard and third-party packages never import
					// the module: the walk stays inside it.
					queue = append(queue, imp)
				}
			}
		}
	}
	return out
}

func (g *graph) chain(parent map[string]string, last string) []string {
	var c []string
	for p := last; p != ""; p = parent[p] {
		name := g.rel(p)
		if name == "" {
			name = p
		}
		c = append(c, name)
	}
	slices.Reverse(c)
	return c
}

func (g *graph) sorted() []string {
	paths := make([]string, 0, len(g.pkgs))
	for p := range g.pkgs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// badNames returns the module's packages whose path has an element that
// names no concern (util, common, helpers, ...).
func (g *graph) badNames(banned []string) []string {
	var out []string
	for _, p := range g.sorted() {
		rel := g.rel(p)
		if rel == "" || g.pkgs[p].DepOnly {
			continue
		}
		for elem := range strings.SplitSeq(rel, "/") {
			if slices.Contains(banned, elem) {
				out = append(out, rel)
				break
			}
		}
	}
	return out
}

// httpUses returns the uses in file src (named name) of the names of
// package net/http that allowed rejects, as "file:line: http.Name".
func httpUses(fset *token.FileSet, name string, src any, allowed func(string) bool) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	local := ""
	for _, imp := range f.Imports {
		if path, _ := strconv.Unquote(imp.Path.Value); path == "net/http" {
			local = "http"
			if imp.Name != nil {
				local = imp.Name.Name
			}
		}
	}
	if local == "" {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && !allowed(sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s: http.%s", fset.Position(sel.Pos()), sel.Sel.Name))
		}
		return true
	})
	return out, nil
}

// citations returns the places in the Go file src (named name) whose
// comments mention text, as "file:line".
func citations(fset *token.FileSet, name string, src any, text string) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, text) {
				out = append(out, fset.Position(c.Pos()).String())
			}
		}
	}
	return out, nil
}

// mdCitations returns the lines of a Markdown file that mention text, as
// "file:line".
func mdCitations(name string, src []byte, text string) []string {
	var out []string
	for i, line := range bytes.Split(src, []byte("\n")) {
		if bytes.Contains(line, []byte(text)) {
			out = append(out, fmt.Sprintf("%s:%d", name, i+1))
		}
	}
	return out
}

// repoFiles returns the files of the module's tree with one of the
// extensions, relative to root; it skips hidden directories, testdata and
// nested modules.
func repoFiles(root string, exts ...string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if slices.Contains(exts, filepath.Ext(path)) {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}
