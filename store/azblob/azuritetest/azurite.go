package azuritetest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The emulator's well-known account and key (public, in Azurite's docs).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running azurite-blob of a test.
type Azurite struct {
	// Endpoint is the blob endpoint of Account: http://127.0.0.1:PORT/devstoreaccount1.
	Endpoint string
	cmd      *exec.Cmd
}

// Start starts a real azurite-blob (npm azurite@3.35.0, installed
// by scripts/install-deps.sh) on a free port, in memory, and stops it at
// the end of the test. Outside CI it skips when azurite-blob is missing;
// with CI=true it fails.
func Start(t *testing.T) *Azurite {
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
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // node itself: the npm shim execs it
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
	return &Azurite{cmd: cmd, Endpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", port, Account)}
}
