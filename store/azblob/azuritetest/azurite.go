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
	// Port is its blob port; Location its data directory ("" in memory).
	Port     int
	Location string
	cmd      *exec.Cmd
}

// Stop stops it as an operator would (SIGTERM: Azurite saves its
// metadata, which it otherwise writes only every few seconds, so a SIGKILL
// can lose recent containers and blobs) and waits for it; after 20 s it
// is killed.
func (a *Azurite) Stop() {
	a.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped Azurite again, on its port and location.
func (a *Azurite) Restart(t *testing.T) {
	t.Helper()
	b := StartAt(t, a.Location, a.Port)
	a.cmd = b.cmd
}

// Start starts a real azurite-blob (npm azurite@3.35.0, installed
// by scripts/install-deps.sh) on a free port, in memory, and stops it at
// the end of the test. Outside CI it skips when azurite-blob is missing;
// with CI=true it fails.
func Start(t *testing.T) *Azurite { t.Helper(); return StartAt(t, "", 0) }

// StartAt is Start with the data kept in the directory location (""
// means in memory) on port (0: a free one).
func StartAt(t *testing.T, location string, port int) *Azurite {
	t.Helper()
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("azurite-blob not found (scripts/install-deps.sh installs it): %v", err)
		}
		t.Skip("azurite-blob not installed (scripts/install-deps.sh installs it)")
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	args := []string{"--inMemoryPersistence"}
	if location != "" {
		args = []string{"--location", location}
	}
	cmd := exec.Command(bin, append(args, "--skipApiVersionCheck", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port), "--silent")...)
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
	return &Azurite{cmd: cmd, Port: port, Location: location, Endpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", port, Account)}
}
