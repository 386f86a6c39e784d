//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// A dotted FQDN as the machine's name gives a pin directory bpffs accepts;
// the name as it is would be refused (issue 18, item 5).
func TestDefaultPinDirOnBpffs(t *testing.T) {
	testenv.BPFFSDir(t) // root and a bpffs at PinRoot
	for _, name := range []string{"web1.example.com", "db-2.corp.example.org", "plain_name-1"} {
		dir := DefaultPinDir(name)
		if filepath.Dir(dir) != PinRoot || strings.Contains(filepath.Base(dir), ".") {
			t.Errorf("DefaultPinDir(%q) = %s", name, dir)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Errorf("bpffs refuses the pin directory of %q: %v", name, err)
			continue
		}
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	}
	if DefaultPinDir("a.b") == DefaultPinDir("a_b") {
		t.Error("a.b and a_b share a pin directory")
	}
	if DefaultPinDir("plain") != PinRoot+"/lifeboat-plain" {
		t.Errorf("a name without a dot changed its directory: %s", DefaultPinDir("plain"))
	}
	// What bpffs does with the name as it is.
	raw := PinRoot + "/lifeboat-sec-raw.example.com"
	if err := os.Mkdir(raw, 0o700); err == nil {
		os.Remove(raw)
		t.Log("this kernel's bpffs accepts dots: the mapping is harmless")
	}
}
