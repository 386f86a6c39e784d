package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/server/pki"
)

// AdminCertCommand is 'lifeboat-server admin-cert renew|show --data DIR'.
type AdminCertCommand struct{ main *Main }

// Run renews or shows the administrator's certificate.
func (c *AdminCertCommand) Run(ctx context.Context, args []string) error {
	m := c.main
	if len(args) == 0 || (args[0] != "renew" && args[0] != "show") {
		fmt.Fprintln(m.Stderr, "Usage: lifeboat-server admin-cert renew|show --data DIR")
		return cmdline.Usagef("admin-cert", "admin-cert: say renew or show")
	}
	verb := args[0]
	fs := flag.NewFlagSet("admin-cert "+verb, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cmdline.SetUsage(fs, "lifeboat-server admin-cert "+verb+" --data DIR")
	data := fs.String("data", m.Getenv("LIFEBOAT_DATA"), "the server's data directory (LIFEBOAT_DATA)")
	if err := cmdline.Parse(fs, args[1:]); err != nil {
		return err
	}
	if *data == "" {
		return cmdline.Usagef("admin-cert "+verb, "admin-cert %s: --data is required", verb)
	}
	if verb == "renew" {
		cert, err := pki.RenewAdmin(*data, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "admin certificate renewed: %s and %s, valid until %s; the previous one is revoked\n",
			filepath.Join(*data, pki.AdminCertFile), filepath.Join(*data, pki.AdminKeyFile), cert.NotAfter.Local().Format(time.DateTime))
		return nil
	}
	cert, err := pki.LoadAdminCert(*data)
	if err != nil {
		return err
	}
	left := time.Until(cert.NotAfter)
	fmt.Fprintf(m.Stdout, "admin certificate %s: serial %s, valid until %s (%d days left)\n",
		filepath.Join(*data, pki.AdminCertFile), cert.SerialNumber.Text(16), cert.NotAfter.Local().Format(time.DateTime), int(left.Hours()/24))
	if left < 14*24*time.Hour {
		fmt.Fprintf(m.Stdout, "renew it: lifeboat-server admin-cert renew --data %s\n", *data)
	}
	return nil
}
