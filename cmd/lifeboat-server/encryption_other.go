//go:build !linux

package main

import "errors"

var sysRoot = ""

// onEncryptedDevice cannot tell off Linux.
func onEncryptedDevice(sys, dir string) (bool, string, error) {
	return false, "", errors.New("not available on this system")
}
