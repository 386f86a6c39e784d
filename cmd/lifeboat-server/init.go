package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
	"github.com/lifeboat-dr/lifeboat/server/console"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/statefile"
	"github.com/lifeboat-dr/lifeboat/store"
	"github.com/lifeboat-dr/lifeboat/store/azblob"
)

// InitCommand is 'lifeboat-server init'.
type InitCommand struct {
	main *Main
}

// Run creates a new data directory.
func (c *InitCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(c.main.Stderr)
	data := fs.String("data", c.main.Getenv("LIFEBOAT_DATA"), "data `DIR` to create (default $LIFEBOAT_DATA)")
	var sans stringList
	fs.Var(&sans, "san", "extra DNS `NAME` or IP address of the server certificate (repeatable)")
	joinURL := fs.String("join", "", "`URL` of a configuration server to join as a process server (scale-out) instead of creating a CA")
	name := fs.String("name", "", "with --join: this process server's `ID`")
	passFile := fs.String("passphrase-file", "", "with --join: `FILE` holding the configuration server's registration passphrase")
	storeURL := fs.String("store", "", "azblob://ACCOUNT/CONTAINER: check (and prepare) target storage in Azure Blob Storage now, with the `URL` 'run --store' will use")
	storeEndpoint := fs.String("store-endpoint", "", "with --store: the account's blob endpoint `URL`")
	storeCreds := fs.String("store-credentials", "", "with --store: `FILE` holding a connection string or the account key (default: the AZURE_STORAGE_* environment)")
	storeCreate := fs.Bool("store-create-container", false, "with --store: create the container if it does not exist")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lifeboat-server init --data DIR [--san NAME...]\n       lifeboat-server init --data DIR --join URL --name ID --passphrase-file F [--san NAME...]\n\nCreates the CA, the server and admin certificates and the registration passphrase in DIR;\nwith --join, the data directory of a process server that joins the configuration server at URL.")
		cmdline.PrintDefaults(fs)
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *data == "" {
		return cmdline.Usagef("init", "init: --data DIR is required")
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	if *storeURL != "" {
		if !azblob.IsURL(*storeURL) {
			return errors.New("init: --store takes azblob://ACCOUNT/CONTAINER (a directory store needs no init)")
		}
		bs, err := openBlobStore(ctx, *storeURL, *storeEndpoint, *storeCreds, "init", c.main.Getenv, *storeCreate)
		if err != nil {
			return fmt.Errorf("init: --store: %w", err)
		}
		bs.Close()
		fmt.Fprintf(c.main.Stdout, "target storage ready: %s\n", bs.Location().ContainerURL())
	}
	if *joinURL != "" {
		return c.join(ctx, dir, *joinURL, *name, *passFile, sans)
	}
	if *name != "" || *passFile != "" {
		return errors.New("init: --name and --passphrase-file go with --join")
	}
	if err := pki.Init(dir, pki.Options{SANs: sans}); err != nil {
		return err
	}
	adminPass, err := console.InitAdmin(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.main.Stdout, "initialized %s\n", dir)
	fmt.Fprintf(c.main.Stdout, "  CA certificate:        %s\n", filepath.Join(dir, pki.CACertFile))
	fmt.Fprintf(c.main.Stdout, "  admin certificate:     %s\n", filepath.Join(dir, pki.AdminCertFile))
	fmt.Fprintf(c.main.Stdout, "  registration passphrase (give it to agents with --passphrase-file): %s\n", filepath.Join(dir, pki.PassphraseFile))
	fmt.Fprintf(c.main.Stdout, "  web console (https://HOST/ui/): account admin, its password in %s (readable by its owner only)\n", adminPass)
	fmt.Fprintf(c.main.Stdout, "next: lifeboat-server run --data %s\n", dir)
	// Failover cost depends on where the target storage lives (a blob
	// store's images are not made from files in DIR).
	if *storeURL != "" {
		return nil
	}
	if ok, err := store.ProbeReflink(dir); err != nil {
		fmt.Fprintf(c.main.Stderr, "warning: could not check whether %s can share extents: %v\n", dir, err)
	} else if !ok {
		fmt.Fprintf(c.main.Stderr, "warning: %s: %s\n", dir, statefile.NoReflinkNote)
	}
	return nil
}
