package cmdlinetest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Result is what a run of the program gave.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// EnvMain is the environment variable that makes a test binary its
// program: set to 1, Main runs the program's main instead of the tests.
const EnvMain = "LIFEBOAT_TEST_MAIN"

// Main is a program's TestMain: func TestMain(m *testing.M) {
// cmdlinetest.Main(m, main) }. With EnvMain=1 it runs main, as the
// program, and exits 0 if main returns; otherwise it runs the tests.
func Main(m *testing.M, main func()) {
	if os.Getenv(EnvMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Command returns the command that runs the program (the test binary as
// main, through Main) with args, in the test's environment.
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), EnvMain+"=1")
	return cmd
}

// Run runs the program (the test binary as main) with args.
func Run(t *testing.T, args ...string) Result {
	t.Helper()
	cmd := Command(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// Case is a command line that must fail with a usage error.
type Case struct {
	Args []string
	// Want are strings stderr must hold (the message, the hint).
	Want []string
}

// Spec is what to check of a program.
type Spec struct {
	Name string
	// Command is a command with flags; Flag one of its flags (no dashes).
	Command, Flag string
	// UsageErrors must each exit 2 with their message.
	UsageErrors []Case
}

// goStyle matches a flag listed the way Go's flag package lists it.
var goStyle = regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+( |$)`)

// Check checks the conventions: usage errors exit 2 with the message and
// a hint; --version; --help, -h and 'help' exit 0 and print to stdout; the command's
// help lists --FLAG, no flag with one dash; 'help COMMAND' prints the
// command's own help; a mistyped command is refused with a suggestion;
// completion scripts for bash, zsh and fish; flag completion; man pages.
func Check(t *testing.T, s Spec) {
	for _, c := range s.UsageErrors {
		r := Run(t, c.Args...)
		if r.Code != 2 {
			t.Errorf("%s %v: exit status %d, want 2 (usage error)\nstderr: %s", s.Name, c.Args, r.Code, r.Stderr)
		}
		for _, w := range append([]string{"hint: "}, c.Want...) {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s %v: stderr lacks %q:\n%s", s.Name, c.Args, w, r.Stderr)
			}
		}
	}
	if r := Run(t, "--version"); r.Code != 0 || !strings.HasPrefix(r.Stdout, s.Name+" ") {
		t.Errorf("%s --version: exit status %d, stdout %q", s.Name, r.Code, r.Stdout)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := Run(t, args...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Usage") {
			t.Errorf("%s %v: exit status %d, want 0 and the usage on stdout\nstdout: %s\nstderr: %s", s.Name, args, r.Code, r.Stdout, r.Stderr)
		}
	}
	for _, args := range [][]string{{s.Command, "--help"}, {"help", s.Command}} {
		r := Run(t, args...)
		if r.Code != 0 {
			t.Errorf("%s %v: exit status %d, want 0\nstderr: %s", s.Name, args, r.Code, r.Stderr)
		}
		if !regexp.MustCompile(`(?m)^\s+--` + regexp.QuoteMeta(s.Flag) + `\b`).MatchString(r.Stdout) {
			t.Errorf("%s %v: stdout does not list --%s:\n%s", s.Name, args, s.Flag, r.Stdout)
		}
		if m := goStyle.FindString(r.Stdout); m != "" {
			t.Errorf("%s %v: a flag listed with one dash (%q):\n%s", s.Name, args, m, r.Stdout)
		}
	}
	typo := s.Command[:len(s.Command)-1] + "x" + s.Command[len(s.Command)-1:]
	if r := Run(t, typo); r.Code != 2 || !strings.Contains(r.Stderr, "did you mean "+s.Command) {
		t.Errorf("%s %s: exit status %d, want 2 and a suggestion of %s:\n%s", s.Name, typo, r.Code, s.Command, r.Stderr)
	}
	for shell, want := range map[string]string{"bash": "bash completion V2 for " + s.Name, "zsh": "#compdef " + s.Name, "fish": "fish completion for " + s.Name} {
		if r := Run(t, "completion", shell); r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("%s completion %s: exit status %d, no %q\n%s", s.Name, shell, r.Code, want, r.Stderr)
		}
	}
	if r := Run(t, "__complete", s.Command, "--"+s.Flag[:2]); !strings.Contains(r.Stdout, "--"+s.Flag+"\t") {
		t.Errorf("%s: completing %s --%s offers no --%s:\n%s", s.Name, s.Command, s.Flag[:2], s.Flag, r.Stdout)
	}
	checkShells(t, s)
	dir := t.TempDir()
	if r := Run(t, "__man", dir); r.Code != 0 {
		t.Fatalf("%s __man: exit status %d\n%s", s.Name, r.Code, r.Stderr)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, s.Name+"-"+strings.ReplaceAll(s.Command, " ", "-")+".[18]"))
	if len(pages) != 1 {
		t.Fatalf("%s __man: no page of %s in %s", s.Name, s.Command, dir)
	}
	b, err := os.ReadFile(pages[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `\fB--`+s.Flag+`\fP`) {
		t.Errorf("%s: man page %s does not document --%s:\n%s", s.Name, pages[0], s.Flag, b)
	}
}
