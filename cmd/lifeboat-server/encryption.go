package main

import (
	"log/slog"
	"path/filepath"

	"github.com/lifeboat-dr/lifeboat/server"
)

// reportEncryption says in the log whether the store and the cache of
// the data directory are on an encrypted block device (dm-crypt/LUKS):
// Lifeboat keeps the replicas and journals unencrypted on their file
// system (docs/security.md, "Data at rest").
func reportEncryption(log *slog.Logger, data, storeDir string) {
	if storeDir == "" {
		storeDir = filepath.Join(data, server.StoreDir)
	}
	for _, p := range []struct{ what, dir string }{{"store", storeDir}, {"cache", filepath.Join(data, server.CacheDir)}} {
		enc, how, err := onEncryptedDevice(sysRoot, p.dir)
		switch {
		case err != nil:
			log.Warn("cannot tell whether the "+p.what+" is on an encrypted device", "dir", p.dir, "err", err)
		case enc:
			log.Info(p.what+" on an encrypted device", "dir", p.dir, "device", how)
		default:
			log.Warn(p.what+" not on an encrypted device: replicas and journals rest unencrypted there", "dir", p.dir, "device", how,
				"hint", "put the data directory (or --store) on a dm-crypt/LUKS device if the disks may leave your control: see docs/security.md")
		}
	}
}
