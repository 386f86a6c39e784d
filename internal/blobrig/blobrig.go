package blobrig

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
	"github.com/lifeboat-dr/lifeboat/store"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// Machine and Disk are the machine the rig's server registers and its one
// disk.
const (
	Machine = "web1"
	Disk    = "sda"
)

// Rig is a running Azurite and the file of its account key.
type Rig struct {
	*azuritetest.Azurite
	// KeyFile holds the account key (mode 0600).
	KeyFile string
}

// Start starts Azurite for the test (azuritetest.Start: outside CI a
// missing azurite-blob skips the test) and writes its key to a file.
func Start(t *testing.T) *Rig {
	t.Helper()
	r := &Rig{Azurite: azuritetest.Start(t), KeyFile: filepath.Join(t.TempDir(), "key")}
	if err := os.WriteFile(r.KeyFile, []byte(azuritetest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// Container creates container name with the account key, as an operator
// would, and returns its client.
func (r *Rig) Container(t *testing.T, name string) *container.Client {
	t.Helper()
	key, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(r.Endpoint+"/"+name, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return cc
}

// Server is a lifeboat-server in process with Machine registered.
type Server struct {
	*server.Server
	// Dir is its data directory.
	Dir string
	// Agent is Machine's process client.
	Agent *servertest.Agent
}

// Serve starts a server whose target storage is st, registers Machine
// with one disk, Disk, of size bytes, and closes the server when the
// test ends. The server logs at debug level to logs, or to the test's
// output if logs is nil.
func Serve(t *testing.T, st store.Store, size int64, logs io.Writer) *Server {
	t.Helper()
	dir := servertest.Init(t)
	cfg := servertest.Config(t, dir)
	cfg.Store = st
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := servertest.Start(t, cfg)
	a := servertest.Register(t, srv, dir, Machine)
	if _, err := a.Process.SetMachine(context.Background(), []api.DiskSpec{{Name: Disk, Size: size}}); err != nil {
		t.Fatal(err)
	}
	return &Server{Server: srv, Dir: dir, Agent: a}
}

// WaitListed waits until point id of Machine is listed.
func (s *Server) WaitListed(t *testing.T, id string) {
	t.Helper()
	servertest.WaitFor(t, "point "+id+" listed", func() bool {
		ps, err := s.Agent.Process.Point(context.Background(), id)
		return err == nil && ps.Listed
	})
}

// CheckVHD downloads page blob name of cc, as Azure would make a managed
// disk of it, and fails the test unless qemu-img (which the test
// requires) reads it as a fixed VHD of a disk of len(want) bytes whose
// data is want; what says what want is, for the failure.
func CheckVHD(t *testing.T, cc *container.Client, name string, want []byte, what string) {
	t.Helper()
	size := int64(len(want))
	vhd := filepath.Join(t.TempDir(), "disk.vhd")
	f, err := os.Create(vhd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cc.NewBlobClient(name).DownloadFile(context.Background(), f, nil)
	f.Close()
	if err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	info, err := exec.Command("qemu-img", "info", "-f", "vpc", "--output=json", vhd).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, info)
	}
	var qi struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(info, &qi); err != nil || qi.VirtualSize != azblob.VirtualSize(size) {
		t.Fatalf("qemu-img info of %s: virtual size %d (%v), want %d: %s", name, qi.VirtualSize, err, azblob.VirtualSize(size), info)
	}
	raw := filepath.Join(t.TempDir(), "raw")
	if o, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", vhd, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, o)
	}
	rb, _ := os.ReadFile(raw)
	if int64(len(rb)) != azblob.VirtualSize(size) || !bytes.Equal(rb[:size], want) || !bytes.Equal(rb[size:], make([]byte, len(rb)-int(size))) {
		t.Fatalf("%s: the VHD's data is not %s", name, what)
	}
}
