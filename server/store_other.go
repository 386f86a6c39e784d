//go:build !unix

package server

import "os"

// flockFile only creates the lock file: this platform has no flock, so a
// store shared between processes is not supported here.
func flockFile(path string, exclusive bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

func tryFlock(path string) (func(), error) { return flockFile(path, true) }
