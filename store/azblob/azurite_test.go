package azblob

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// The emulator's well-known account and key (public, in Azurite's docs).
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azurite is a running azurite-blob of a test.
type azurite struct {
	loc  Location
	cred Credential
	cmd  *exec.Cmd
}

// startAzurite starts a real azurite-blob (npm azurite@3.35.0, installed
// by scripts/install-deps.sh) on a free port, in memory, and stops it at
// the end of the test. Outside CI it skips when azurite-blob is missing;
// with CI=true it fails.
func startAzurite(t *testing.T) *azurite {
	t.Helper()
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("azurite-blob not found (scripts/install-deps.sh installs it): %v", err)
		}
		t.Skip("azurite-blob not installed (scripts/install-deps.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port), "--silent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "successfully listens") {
				close(ready)
				for sc.Scan() {
				}
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("azurite-blob did not start within 60 s")
	}
	a := &azurite{cmd: cmd}
	a.loc, err = ParseURL(Scheme+devAccount+"/lifeboat", fmt.Sprintf("http://127.0.0.1:%d/%s", port, devAccount))
	if err != nil {
		t.Fatal(err)
	}
	a.cred = Credential{Account: devAccount, key: devKey, Source: "test"}
	return a
}

// container creates a container and returns its location.
func (a *azurite) container(t *testing.T, name string) Location {
	t.Helper()
	loc := a.loc
	loc.Container = name
	cc, err := newContainerClient(loc, a.cred, policy.RetryOptions{MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return loc
}

// open opens a store in a new container under owner.
func (a *azurite) open(t *testing.T, loc Location, owner string) *Store {
	t.Helper()
	s, err := Open(context.Background(), loc, a.cred, Options{Owner: owner, LeaseDuration: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
