//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/internal/testenv"
)

// TestPackageMaintainerScripts installs, upgrades, disables then upgrades,
// masks then upgrades, removes and purges each .deb on this machine
// (packaging/test/deb.sh): the unit and the System V script are the
// package's files, enabled on the first install, an admin's disable or
// mask survives an upgrade, an upgrade restarts only a running service,
// systemd-analyze verify accepts the units, and purge leaves nothing.
// Systemd is not PID 1 here: the enablement is checked through the real
// deb-systemd-helper and offline systemctl, starts and restarts through
// what deb-systemd-invoke asks of systemctl (a shim records it).
func TestPackageMaintainerScripts(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dpkg", "dpkg-deb", "deb-systemd-helper", "deb-systemd-invoke", "update-rc.d",
		"systemctl", "systemd-analyze", "unshare", "adduser")
	v1 := packages(t)
	v2 := t.TempDir()
	buildPackages(t, v2, pkgV2)
	arch := strings.TrimSpace(run(t, "go", "env", "GOARCH"))
	for _, p := range []string{"lifeboat-agent", "lifeboat-server"} {
		t.Run(p, func(t *testing.T) {
			old := filepath.Join(v1, fmt.Sprintf("%s_%s_%s.deb", p, pkgV1, arch))
			new := filepath.Join(v2, fmt.Sprintf("%s_%s_%s.deb", p, pkgV2, arch))
			out, err := exec.Command("../packaging/test/deb.sh", old, new).CombinedOutput()
			t.Logf("packaging/test/deb.sh %s:\n%s", p, out)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		})
	}
}
