//go:build linux

package e2e

import (
	"debug/pe"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestWindowsMSI builds the Windows agent's MSI as 'make package' does
// (scripts/package-msi.sh, wixl) and checks it with msitools: the product
// version, the two programs, the lifeboat-agent service and its command
// line, and that the programs inside are Windows x64 executables. The MSI
// is not installed anywhere: there is no Windows host in this project's CI.
func TestWindowsMSI(t *testing.T) {
	testenv.RequireCommand(t, "go", "git", "wixl", "msiinfo", "msiextract")
	dist := t.TempDir()
	cmd := exec.Command("../scripts/package-msi.sh")
	cmd.Env = append(os.Environ(), "VERSION=1.2.3~test", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package-msi.sh: %v\n%s", err, out)
	}
	msi := filepath.Join(dist, "lifeboat-agent-1.2.3~test-x64.msi")
	table := func(name string) string {
		out, err := exec.Command("msiinfo", "export", msi, name).CombinedOutput()
		if err != nil {
			t.Fatalf("msiinfo export %s: %v\n%s", name, err, out)
		}
		return strings.ReplaceAll(string(out), "\r\n", "\n") // msiinfo writes CRLF
	}
	if p := table("Property"); !strings.Contains(p, "ProductVersion\t1.2.3\n") || !strings.Contains(p, "UpgradeCode\t{6a1f3c52-8f0e-4d7b-9b0a-3e5c1d2f7a41}") {
		t.Fatalf("Property table:\n%s", p)
	}
	files := table("File")
	for _, f := range []string{"lifeboat-agent.exe", "agentctl.exe"} {
		if !strings.Contains(files, "\t"+f+"\t") {
			t.Fatalf("%s missing from the File table:\n%s", f, files)
		}
	}
	svc := table("ServiceInstall")
	if !strings.Contains(svc, "\tlifeboat-agent\t") || !strings.Contains(svc, `run --config "[CommonAppDataFolder]Lifeboat\agent.toml"`) {
		t.Fatalf("ServiceInstall table:\n%s", svc)
	}
	if c := table("ServiceControl"); !strings.Contains(c, "\tlifeboat-agent\t") {
		t.Fatalf("ServiceControl table:\n%s", c)
	}
	out := t.TempDir()
	if b, err := exec.Command("msiextract", "-C", out, msi).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v\n%s", err, b)
	}
	for _, f := range []string{"lifeboat-agent.exe", "agentctl.exe"} {
		var path string
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == f {
				path = p
			}
			return nil
		})
		if path == "" {
			t.Fatalf("%s not extracted from the MSI", f)
		}
		exe, err := pe.Open(path)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if exe.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
			t.Fatalf("%s: machine %#x, want AMD64", f, exe.Machine)
		}
		exe.Close()
	}
}
