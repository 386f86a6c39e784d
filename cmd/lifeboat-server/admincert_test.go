package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// The admin certificate lives AdminValidity, not as long as the CA, and
// 'admin-cert renew' replaces it while the server runs: the old one is
// refused from then on, the new one works (issue 18, item 1).
func TestAdminCertRenew(t *testing.T) {
	dir := servertest.Init(t)
	cert, err := pki.LoadAdminCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(cert.NotAfter); life > pki.AdminValidity || life < pki.AdminValidity-time.Hour {
		t.Errorf("admin certificate valid %v, want %v", life.Round(time.Hour), pki.AdminValidity)
	}
	s := servertest.Start(t, servertest.Config(t, dir))
	old := servertest.Admin(t, s, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := old.Machines(ctx); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut}
	if err := m.Run(ctx, []string{"admin-cert", "renew", "--data", dir}); err != nil {
		t.Fatalf("admin-cert renew: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "admin certificate renewed") {
		t.Errorf("output: %s", out.String())
	}
	renewed, err := pki.LoadAdminCert(dir)
	if err != nil || renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Fatalf("renewed certificate %v, %v", renewed, err)
	}
	old.CloseIdleConnections()
	if _, err := old.Machines(ctx); err == nil {
		t.Error("the old admin certificate still works after its renewal")
	}
	if _, err := servertest.Admin(t, s, dir).Machines(ctx); err != nil {
		t.Errorf("the renewed admin certificate: %v", err)
	}
	out.Reset()
	if err := m.Run(ctx, []string{"admin-cert", "show", "--data", dir}); err != nil || !strings.Contains(out.String(), renewed.SerialNumber.Text(16)) {
		t.Errorf("admin-cert show: %v: %s", err, out.String())
	}
}
