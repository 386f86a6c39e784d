package server_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// A machine renews its certificate over the mutual-TLS channel with the
// certificate it renews: the new one replicates, the old one is refused
// from then on and cannot renew again (issue 18, item 1).
func TestMachineRenewsOverMutualTLS(t *testing.T) {
	dir := servertest.Init(t)
	s := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, s, dir, "web1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	disks := []api.DiskSpec{{Name: "sda", Size: 1 << 20}}
	cfg, err := client.NewAgentConfig(s.APIAddr(), a.Cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := cfg.Renew(ctx, key)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	keyPEM, _ := pki.KeyPEM(key)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Subject.CommonName != "web1" || cert.Leaf.SerialNumber.Cmp(a.Cert.Leaf.SerialNumber) == 0 {
		t.Errorf("renewed certificate %s, serial %s", cert.Leaf.Subject.CommonName, cert.Leaf.SerialNumber.Text(16))
	}
	p, err := client.NewProcess(s.ProcessAddr(), cert, a.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	if _, err := p.SetMachine(ctx, disks); err != nil {
		t.Fatalf("the renewed certificate: %v", err)
	}
	a.Process.CloseIdleConnections()
	if _, err := a.Process.SetMachine(ctx, disks); err == nil {
		t.Error("the renewed-away certificate still replicates")
	}
	cfg.CloseIdleConnections()
	if _, err := cfg.Renew(ctx, key); err == nil {
		t.Error("the renewed-away certificate renewed again")
	}
	// The admin certificate does not renew here.
	adm, err := tls.LoadX509KeyPair(dir+"/"+pki.AdminCertFile, dir+"/"+pki.AdminKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := client.NewAgentConfig(s.APIAddr(), adm, a.CAPEM)
	if _, err := ac.Renew(ctx, key); err == nil {
		t.Error("the admin certificate renewed as a machine")
	}
}
