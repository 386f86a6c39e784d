package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// The agent renews its certificate over mutual TLS when due, saves it, and
// its process client goes on with the new one while the old one is
// refused (issue 18, item 1).
func TestAgentRenewsCertificate(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, s, dir, "web1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idDir := t.TempDir()
	id := &identity{cert: a.Cert, caPEM: a.CAPEM, processAddr: a.Addr}
	old, err := client.NewProcess(a.Addr, a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer old.CloseIdleConnections()
	var shown *x509.Certificate
	r := &renewer{server: s.APIAddr(), idDir: idDir, id: id, uses: []interface{ SetCertificate(tls.Certificate) }{a.Process},
		onRenew: func(c *x509.Certificate) { shown = c }, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		due: func(*x509.Certificate, time.Time) bool { return false }}
	if err := r.once(ctx); err != nil || shown != nil {
		t.Fatalf("renewed when not due: %v", err)
	}
	if renewDue(a.Cert.Leaf, time.Now()) || !renewDue(a.Cert.Leaf, a.Cert.Leaf.NotAfter.Add(-24*time.Hour)) {
		t.Error("renewDue: a fresh certificate is due, or one a day from expiry is not")
	}
	r.due = func(*x509.Certificate, time.Time) bool { return true }
	if err := r.once(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(idDir, "machine.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	saved, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || shown == nil || saved.SerialNumber.Cmp(shown.SerialNumber) != 0 || saved.SerialNumber.Cmp(a.Cert.Leaf.SerialNumber) == 0 {
		t.Fatalf("saved %v, shown %v: not the renewed certificate", saved, shown)
	}
	disks := []api.DiskSpec{{Name: "sda", Size: 1 << 20}}
	if _, err := a.Process.SetMachine(ctx, disks); err != nil {
		t.Errorf("the process client after the renewal: %v", err)
	}
	if _, err := old.SetMachine(ctx, disks); err == nil {
		t.Error("the old certificate still replicates after the renewal")
	}
}
