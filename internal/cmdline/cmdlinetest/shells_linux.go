package cmdlinetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// bashCompletion is bash-completion's library, which cobra's bash script
// needs (the .deb of bash-completion; scripts/install-deps.sh installs it).
const bashCompletion = "/usr/share/bash-completion/bash_completion"

// checkShells completes "PROG COMM" and "PROG COMMAND --FL" in a real
// bash and a real fish with the program's completion scripts, as an
// operator's TAB does, and loads the zsh script in zsh.
func checkShells(t *testing.T, s Spec) {
	// The scripts run the program by its name: a link to the test binary.
	bin := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(bin, s.Name)); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), EnvMain+"=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Run("fish", func(t *testing.T) {
		testenv.RequireCommand(t, "fish")
		r := Run(t, "completion", "fish")
		script := filepath.Join(t.TempDir(), s.Name+".fish")
		if err := os.WriteFile(script, []byte(r.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		complete := func(line string) string {
			cmd := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, line)
			cmd.Env = env
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("fish completion of %q: %v", line, err)
			}
			return string(out)
		}
		if got := complete(s.Name + " " + s.Command[:len(s.Command)-1]); !strings.Contains(got, s.Command+"\t") {
			t.Errorf("fish: %s %s<TAB> offers %q, not %s", s.Name, s.Command[:len(s.Command)-1], got, s.Command)
		}
		if got := complete(s.Name + " " + s.Command + " --" + s.Flag[:2]); !strings.Contains(got, "--"+s.Flag+"\t") {
			t.Errorf("fish: %s %s --%s<TAB> offers %q, not --%s", s.Name, s.Command, s.Flag[:2], got, s.Flag)
		}
	})
	t.Run("zsh", func(t *testing.T) {
		testenv.RequireCommand(t, "zsh")
		r := Run(t, "completion", "zsh")
		script := filepath.Join(t.TempDir(), "_"+s.Name)
		if err := os.WriteFile(script, []byte(r.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("zsh", "-f", "-c", `autoload -U compinit && compinit -u -D && source $1 && whence -w _`+s.Name, "zsh", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "_"+s.Name+": function") {
			t.Errorf("zsh: the completion script does not load: %v\n%s", err, out)
		}
	})
	t.Run("bash", func(t *testing.T) {
		testenv.RequireCommand(t, "bash")
		if _, err := os.Stat(bashCompletion); err != nil {
			if testenv.InCI() {
				t.Fatalf("needs bash-completion (%v), and CI=true so this test must run", err)
			}
			t.Skipf("needs bash-completion: %v (set CI=true to make this a failure)", err)
		}
		r := Run(t, "completion", "bash")
		script := filepath.Join(t.TempDir(), s.Name)
		if err := os.WriteFile(script, []byte(r.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		complete := func(words ...string) string {
			line := strings.Join(words, " ")
			sh := `source "$1"; source "$2"; shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
__start_` + s.Name + ` 2>/dev/null; echo "${COMPREPLY[*]}"`
			cmd := exec.Command("bash", append([]string{"-c", sh, "bash", bashCompletion, script, os.Args[0]}, words[1:]...)...)
			cmd.Env = append(os.Environ(), EnvMain+"=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bash completion of %q: %v", line, err)
			}
			return strings.TrimSpace(string(out))
		}
		if got := complete(s.Name, s.Command[:len(s.Command)-1]); !strings.Contains(" "+got+" ", " "+s.Command+" ") {
			t.Errorf("%s %s<TAB> offers %q, not %s", s.Name, s.Command[:len(s.Command)-1], got, s.Command)
		}
		if got := complete(s.Name, s.Command, "--"+s.Flag[:2]); !strings.Contains(" "+got+" ", " --"+s.Flag+" ") {
			t.Errorf("%s %s --%s<TAB> offers %q, not --%s", s.Name, s.Command, s.Flag[:2], got, s.Flag)
		}
	})
}
